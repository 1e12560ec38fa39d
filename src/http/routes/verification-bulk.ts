import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { numberOptionFields, optionsFromBody } from '../../catalogue/number-options.ts';
import { errorTable, type ErrorCode } from '../../errors.ts';
import { MAX_BULK_QUANTITY, purchaseBulk } from '../../verifications/bulk.ts';
import { parseIdempotencyKey } from '../../verifications/idempotency.ts';
import { VerificationSchema, viewsOf } from '../../verifications/resource.ts';
import { requireUser } from '../auth.ts';
import { problemResponses } from '../problem.ts';
import { RequiredIdempotencyHeaders, Security } from '../schemas.ts';

const BulkItemSchema = z.object({
  index: z.number().int().describe('position in the set, from 0'),
  status: z.number().int().describe('what a single purchase would have answered: 201 waiting, 202 pending, or the error status'),
  verification: VerificationSchema,
  error: z
    .object({ code: z.enum(Object.keys(errorTable) as [ErrorCode, ...ErrorCode[]]), detail: z.string() })
    .nullable()
    .describe('why this number was not bought (its hold was released at once); null when it was'),
});

/** POST /v1/verifications/bulk: several numbers for one service under one Idempotency-Key. */
const verificationBulkRoutes: FastifyPluginAsyncZod = async (app) => {
  const { ctx, lifecycle: deps } = app;

  app.post('/v1/verifications/bulk', {
    preValidation: requireUser,
    schema: {
      operationId: 'createVerificationsInBulk',
      tags: ['verifications'],
      summary: `Buy up to ${MAX_BULK_QUANTITY} numbers for one service at once (Idempotency-Key required)`,
      description:
        'Holds the price of every number in one step (or nothing: 402 when the wallet cannot cover the whole set), then buys each as its own ' +
        'verification; a number that cannot be bought is released at once and listed with its error. A retry with the same key and body ' +
        'returns the same set (Idempotent-Replayed: true once every number was stored); the same key with another body is 422.',
      security: Security,
      headers: RequiredIdempotencyHeaders,
      body: z.strictObject({
        service: z.string().trim().min(1).max(64),
        country: z.string().regex(/^[A-Z]{2}$/, 'ISO 3166 alpha-2, upper case').optional(),
        quantity: z.number().int().min(1).max(MAX_BULK_QUANTITY),
        max_price_minor: z.number().int().positive().optional().describe('refuse (422) when the price of one number is above this'),
        ...numberOptionFields,
      }),
      response: {
        200: z.object({ items: z.array(BulkItemSchema) }).meta({ id: 'BulkPurchase' }),
        ...problemResponses(400, 401, 402, 409, 422, 429, 503),
      },
      answers: {
        200: {
          description: 'Each number of the set with its outcome, in order',
          headers: { 'Idempotent-Replayed': false },
        },
      },
    },
    handler: async (request, reply) => {
      const me = await requireUser(request);
      const idempotencyKey = parseIdempotencyKey(request.headers['idempotency-key']);
      const outcome = await purchaseBulk(deps, {
        userId: me.userId,
        idempotencyKey,
        service: request.body.service,
        country: request.body.country,
        quantity: request.body.quantity,
        maxPriceMinor: request.body.max_price_minor,
        options: optionsFromBody(request.body),
      });
      if (outcome.replayed) reply.header('idempotent-replayed', 'true');
      const views = await viewsOf(
        ctx.database.db,
        outcome.items.map((i) => i.row),
      );
      return { items: outcome.items.map((item, i) => ({ index: item.index, status: item.status, verification: views[i]!, error: item.error })) };
    },
  });
};

export default verificationBulkRoutes;
