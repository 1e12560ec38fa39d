import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { diagnose } from '../../ops/diagnose.ts';
import { reconcile, recordReconcileRun } from '../../ops/reconcile.ts';
import { DiagnoseSchema, ReconcileSchema } from '../../ops/reports.ts';
import { requireAdmin } from '../auth.ts';
import { problemResponses } from '../problem.ts';
import { Security } from '../schemas.ts';

/**
 * The ops tools over HTTP (docs/operations.md), for the dashboard and for the CLI when a running embedded
 * server holds the data directory: GET /v1/admin/diagnose (read-only) and POST /v1/admin/reconcile
 * (dry run, or repairs with execute: true; an executed run is audited as the calling admin).
 */

const adminOpsRoutes: FastifyPluginAsyncZod = async (app) => {
  const { ctx, lifecycle } = app;

  app.get('/v1/admin/diagnose', {
    preValidation: requireAdmin,
    schema: {
      operationId: 'adminDiagnose',
      tags: ['admin', 'operations'],
      summary: 'Prove the ledger and lifecycle invariants on the live database (read-only)',
      security: Security,
      response: { 200: DiagnoseSchema, ...problemResponses(401, 403) },
      answers: { 200: { description: 'Every invariant check with what it found' } },
    },
    handler: async (request) => {
      await requireAdmin(request);
      return diagnose({ database: ctx.database, clock: ctx.clock, config: ctx.config, breaker: lifecycle.breaker, providers: lifecycle.providers });
    },
  });

  app.post('/v1/admin/reconcile', {
    preValidation: requireAdmin,
    schema: {
      operationId: 'adminReconcile',
      tags: ['admin', 'operations'],
      summary: 'Find money problems of the last N days; with execute, repair them through the settlement code',
      security: Security,
      body: z.strictObject({
        days: z.number().int().min(1).max(3650),
        execute: z.boolean(),
        user: z.string().trim().min(3).max(254).optional().describe("only this customer's verifications (email)"),
      }),
      response: { 200: ReconcileSchema, ...problemResponses(400, 401, 403) },
      answers: { 200: { description: 'What was found and, with execute, repaired' } },
    },
    handler: async (request) => {
      const admin = await requireAdmin(request);
      const report = await reconcile(lifecycle, {
        days: request.body.days,
        execute: request.body.execute,
        userEmail: request.body.user,
        payments: app.payments,
      });
      await recordReconcileRun(
        ctx.database.db,
        report,
        admin.via === 'ops' ? { actorId: null, actor: 'cli' } : { actorId: admin.userId, actor: 'admin' },
        ctx.clock.now(),
      );
      request.log.info({ execute: report.execute, found: report.found.length, repaired: report.repaired, remaining: report.remaining }, 'reconcile run');
      return report;
    },
  });
};

export default adminOpsRoutes;
