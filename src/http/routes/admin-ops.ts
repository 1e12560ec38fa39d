import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { diagnose } from '../../ops/diagnose.ts';
import { problemKinds, reconcile, recordReconcileRun } from '../../ops/reconcile.ts';
import { verificationStates } from '../../verifications/schema.ts';
import { requireAdmin } from '../auth.ts';
import { problemResponses } from '../problem.ts';
import { Security, Timestamp } from '../schemas.ts';

/**
 * The ops tools over HTTP (DESIGN §7), for the dashboard and for the CLI when a running embedded
 * server holds the data directory: GET /v1/admin/diagnose (read-only) and POST /v1/admin/reconcile
 * (dry run, or repairs with execute: true; an executed run is audited as the calling admin).
 */
const CheckSchema = z.object({ name: z.string(), ok: z.boolean(), count: z.number().int(), detail: z.string() }).meta({ id: 'DiagnoseCheck' });

const rate = z.number().nullable();

export const DiagnoseSchema = z
  .object({
    ok: z.boolean().describe('false when any invariant check fails'),
    generated_at: Timestamp,
    checks: z.array(CheckSchema),
    states: z.object(Object.fromEntries(verificationStates.map((s) => [s, z.number().int()])) as Record<(typeof verificationStates)[number], z.ZodNumber>),
    last_24h: z.object({
      purchases: z.number().int(),
      received: z.number().int(),
      expired: z.number().int(),
      cancelled: z.number().int(),
      failed: z.number().int(),
      success_rate: rate,
      timeout_rate: rate,
      refund_rate: rate,
    }),
    top_failing_services: z.array(
      z.object({ provider: z.string(), service: z.string(), purchases: z.number().int(), failures: z.number().int(), failure_rate: z.number() }),
    ),
    breakers: z.record(z.string(), z.string()),
    engine: z.object({
      lag_seconds: z.number(),
      workers: z.array(z.object({ id: z.string(), started_at: Timestamp, last_tick_at: Timestamp, alive: z.boolean() })),
    }),
    late_sms: z.number().int(),
    upstream_settlement_owed: z.object({ count: z.number().int(), amount_minor: z.number().int(), orphans_suspected: z.number().int() }),
  })
  .meta({ id: 'DiagnoseReport' });

export const ReconcileSchema = z
  .object({
    window_days: z.number().int(),
    execute: z.boolean(),
    user_email: z.string().nullable(),
    generated_at: Timestamp,
    found: z.array(
      z.object({
        kind: z.enum(problemKinds),
        verification_id: z.uuid().nullable(),
        user_email: z.string().nullable(),
        amount_minor: z.number().int().nullable(),
        detail: z.string(),
        repaired: z.boolean(),
      }),
    ),
    summary: z.partialRecord(z.enum(problemKinds), z.number().int()),
    remaining: z.number().int().describe('problems still present when the run ended'),
    repaired: z.number().int(),
    warnings: z.array(z.string()),
  })
  .meta({ id: 'ReconcileReport' });

const adminOpsRoutes: FastifyPluginAsyncZod = async (app) => {
  const { ctx, lifecycle } = app;

  app.get('/v1/admin/diagnose', {
    preValidation: requireAdmin,
    schema: {
      tags: ['admin', 'operations'],
      summary: 'Prove the ledger and lifecycle invariants on the live database (read-only)',
      security: Security,
      response: { 200: DiagnoseSchema, ...problemResponses(401, 403) },
    },
    handler: async (request) => {
      await requireAdmin(request);
      return diagnose({ database: ctx.database, clock: ctx.clock, config: ctx.config, breaker: lifecycle.breaker });
    },
  });

  app.post('/v1/admin/reconcile', {
    preValidation: requireAdmin,
    schema: {
      tags: ['admin', 'operations'],
      summary: 'Find money problems of the last N days; with execute, repair them through the settlement code',
      security: Security,
      body: z.strictObject({
        days: z.number().int().min(1).max(3650),
        execute: z.boolean(),
        user: z.string().trim().min(3).max(254).optional().describe("only this customer's verifications (email)"),
      }),
      response: { 200: ReconcileSchema, ...problemResponses(400, 401, 403) },
    },
    handler: async (request) => {
      const admin = await requireAdmin(request);
      const report = await reconcile(lifecycle, {
        days: request.body.days,
        execute: request.body.execute,
        userEmail: request.body.user,
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
