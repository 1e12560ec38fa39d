import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { findUser } from '../../accounts/users.ts';
import { DomainError } from '../../errors.ts';
import { recheckTopUp } from '../../payments/recheck.ts';
import { processorNames } from '../../payments/schema.ts';
import { outstandingReceivable } from '../../payments/settlement.ts';
import { createTopUp, findCustomerTopUp, findTopUp, listTopUps, TopUpSchema, topUpResource, topUpResources } from '../../payments/top-ups.ts';
import { MinorUnits } from '../../money.ts';
import { parseIdempotencyKey } from '../../verifications/idempotency.ts';
import { requireAdmin, requireUser } from '../auth.ts';
import { problemResponses } from '../problem.ts';
import { Page, pageQuery, RequiredIdempotencyHeaders, Security } from '../schemas.ts';

const TopUpId = z.strictObject({ id: z.uuid() });

/** Where customers reach this server: PUBLIC_URL, else the request's own origin. */
export function publicUrlOf(request: FastifyRequest, configured: string | undefined): string {
  return configured ?? `${request.protocol}://${request.host}`;
}

/**
 * Wallet top-ups: start one (a checkout at the processor), list and read them, and an admin's
 * re-check against the processor. Thin: src/payments decides everything; money moves only when the
 * processor confirms (src/payments/settlement.ts), never on the customer's return.
 */
const topUpRoutes: FastifyPluginAsyncZod = async (app) => {
  const { ctx, payments } = app;

  app.post('/v1/top-ups', {
    preValidation: requireUser,
    schema: {
      operationId: 'createTopUp',
      tags: ['top-ups'],
      summary: 'Start a wallet top-up (Idempotency-Key required)',
      description:
        'Opens a checkout at the processor and answers 201 with its `checkout_url`; the wallet is credited once, when the processor confirms the payment. ' +
        'The same Idempotency-Key with the same body returns the same top-up; with another body, 422.',
      security: Security,
      headers: RequiredIdempotencyHeaders,
      body: z.strictObject({
        amount_minor: z.number().int().positive().describe(`minor units, between TOP_UP_MIN_MINOR and TOP_UP_MAX_MINOR`),
        processor: z.enum(processorNames).optional().describe('one of PAYMENT_PROCESSORS; default the first'),
      }),
      response: { 201: TopUpSchema, ...problemResponses(400, 401, 403, 409, 422, 503) },
      answers: { 201: { description: 'The top-up with its checkout_url (the same one again for a repeated Idempotency-Key)', headers: { Location: true, 'Idempotent-Replayed': false } } },
    },
    handler: async (request, reply) => {
      const me = await requireUser(request);
      const idempotencyKey = parseIdempotencyKey(request.headers['idempotency-key']);
      const user = await findUser(ctx.database.db, me.userId);
      if (!user) throw new DomainError('unauthenticated', 'no such user');
      const { row, replayed } = await createTopUp(payments, {
        userId: me.userId,
        customerEmail: user.email,
        idempotencyKey,
        amountMinor: request.body.amount_minor,
        processor: request.body.processor,
        publicUrl: publicUrlOf(request, ctx.config.PUBLIC_URL),
      });
      if (replayed) reply.header('idempotent-replayed', 'true');
      reply.header('location', `/v1/top-ups/${row.id}`);
      return reply.status(201).send(await topUpResource(ctx.database.db, row));
    },
  });

  app.get('/v1/top-ups', {
    preValidation: requireUser,
    schema: {
      operationId: 'listTopUps',
      tags: ['top-ups'],
      summary: 'Your top-ups, newest first, and what you owe for reversed ones',
      security: Security,
      querystring: z.strictObject({ ...pageQuery({ max: 100, default: 20 }) }),
      response: {
        200: Page(TopUpSchema).extend({
          receivable_minor: MinorUnits.describe('owed for refunded or disputed top-ups; your next top-up settles it first'),
          processors: z.array(z.enum(processorNames)).describe('the processors you can pay with, the default first'),
          min_amount_minor: MinorUnits,
          max_amount_minor: MinorUnits,
        }),
        ...problemResponses(400, 401),
      },
      answers: { 200: { description: 'A page of top-ups; `next_cursor` is null on the last page' } },
    },
    handler: async (request) => {
      const me = await requireUser(request);
      const db = ctx.database.db;
      const page = await listTopUps(db, me.userId, { after: request.query.cursor, limit: request.query.limit });
      return {
        items: await topUpResources(db, page.items),
        next_cursor: page.nextCursor,
        receivable_minor: await outstandingReceivable(db, me.userId),
        processors: [...payments.processors.keys()],
        min_amount_minor: ctx.config.TOP_UP_MIN_MINOR,
        max_amount_minor: ctx.config.TOP_UP_MAX_MINOR,
      };
    },
  });

  app.get('/v1/top-ups/:id', {
    preValidation: requireUser,
    schema: {
      operationId: 'getTopUp',
      tags: ['top-ups'],
      summary: 'One top-up',
      security: Security,
      params: TopUpId,
      response: { 200: TopUpSchema, ...problemResponses(400, 401, 404) },
      answers: { 200: { description: 'The top-up as it is now' } },
    },
    handler: async (request) => {
      const me = await requireUser(request);
      const row = await findCustomerTopUp(ctx.database.db, me.userId, request.params.id);
      if (!row) throw new DomainError('not_found', 'no such top-up');
      return topUpResource(ctx.database.db, row);
    },
  });

  app.post('/v1/admin/top-ups/:id/recheck', {
    preValidation: requireAdmin,
    schema: {
      operationId: 'recheckTopUp',
      tags: ['admin'],
      summary: 'Ask the processor about a top-up and apply its answer',
      description: 'A paid checkout is credited (once); a failed or expired one is closed; an open one is left as it is.',
      security: Security,
      params: TopUpId,
      response: {
        200: z.object({ processor_state: z.string(), outcome: z.string(), top_up: TopUpSchema }),
        ...problemResponses(400, 401, 403, 404, 503),
      },
      answers: { 200: { description: 'What the processor said and the top-up after applying it' } },
    },
    handler: async (request) => {
      await requireAdmin(request);
      const db = ctx.database.db;
      const row = await findTopUp(db, request.params.id);
      if (!row) throw new DomainError('not_found', 'no such top-up');
      let result;
      try {
        result = await recheckTopUp(payments, row);
      } catch (error) {
        request.log.warn({ err: error, processor: row.processor, topUp: row.id }, 'top-up re-check: the processor did not answer');
        throw new DomainError('processor_unavailable', `${row.processor} did not answer; try the re-check again later`);
      }
      return { processor_state: result.state, outcome: result.outcome, top_up: await topUpResource(db, (await findTopUp(db, row.id))!) };
    },
  });
};

export default topUpRoutes;
