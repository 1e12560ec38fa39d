import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { creditUserWallet } from '../../accounts/admin.ts';
import { MAX_CREDIT_MINOR, MAX_REASON_LENGTH } from '../../accounts/policy.ts';
import { requireAdmin } from '../auth.ts';
import { problemResponses } from '../problem.ts';
import { WalletSchema, walletResource } from '../../ledger/resource.ts';
import { IdempotencyHeaders, Security } from '../schemas.ts';

/**
 * POST /v1/admin/users/:id/credit: a top-up (positive) or an adjustment down (negative), audited
 * in the same transaction. With Idempotency-Key, a retry returns the first transfer
 * (Idempotent-Replayed: true) and a different body with the same key is 422.
 */
const adminCreditRoutes: FastifyPluginAsyncZod = async (app) => {
  const { ctx } = app;

  app.post('/v1/admin/users/:id/credit', {
    preValidation: requireAdmin,
    schema: {
      operationId: 'adminCreditWallet',
      tags: ['admin'],
      summary: "Credit (or debit) a user's wallet",
      security: Security,
      params: z.strictObject({ id: z.uuid() }),
      headers: IdempotencyHeaders,
      body: z.strictObject({
        amount_minor: z
          .number()
          .int()
          .min(-MAX_CREDIT_MINOR)
          .max(MAX_CREDIT_MINOR)
          .refine((v) => v !== 0, 'must not be zero')
          .describe('minor units; positive tops up, negative adjusts down'),
        reason: z.string().trim().min(1).max(MAX_REASON_LENGTH),
      }),
      response: {
        201: z.object({ transfer_id: z.uuid(), replayed: z.boolean(), wallet: WalletSchema }),
        ...problemResponses(400, 401, 402, 403, 404, 413, 422),
      },
      answers: {
        201: { description: 'The transfer and the wallet after it; a replay returns the first transfer', headers: { 'Idempotent-Replayed': false } },
      },
    },
    handler: async (request, reply) => {
      const admin = await requireAdmin(request);
      const result = await creditUserWallet(ctx.database, {
        // The local operator token is the CLI: its keys share the CLI's scope whichever way it connects.
        actor: admin.via === 'ops' ? { kind: 'operator' } : { kind: 'admin', adminId: admin.userId },
        userId: request.params.id,
        amountMinor: request.body.amount_minor,
        reason: request.body.reason,
        idempotencyKey: request.headers['idempotency-key'],
        now: ctx.clock.now(),
      });
      if (result.replayed) reply.header('idempotent-replayed', 'true');
      return reply.status(201).send({ transfer_id: result.transferId, replayed: result.replayed, wallet: walletResource(result.wallet) });
    },
  });
};

export default adminCreditRoutes;
