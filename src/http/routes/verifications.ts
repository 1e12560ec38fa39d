import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { numberOptionFields, optionsFromBody } from '../../catalogue/number-options.ts';
import { DomainError } from '../../errors.ts';
import { requestAnotherCode } from '../../verifications/another-code.ts';
import { cancelVerification } from '../../verifications/flows.ts';
import { NumberReportSchema, reportNumber, reportView } from '../../verifications/reports.ts';
import { parseIdempotencyKey } from '../../verifications/idempotency.ts';
import { purchaseVerification } from '../../verifications/purchase.ts';
import { reportReasons, verificationStates } from '../../verifications/schema.ts';
import { findCustomerVerification, listVerifications, VerificationSchema, viewOf } from '../../verifications/resource.ts';
import { requireUser } from '../auth.ts';
import { problemResponses } from '../problem.ts';
import { Page, pageQuery, RequiredIdempotencyHeaders, Security } from '../schemas.ts';

const VerificationId = z.strictObject({ id: z.uuid() });

/** Buying, reading and cancelling verifications. Thin: the lifecycle decides everything. */
const verificationRoutes: FastifyPluginAsyncZod = async (app) => {
  const { ctx, lifecycle: deps } = app;

  app.post('/v1/verifications', {
    preValidation: requireUser,
    schema: {
      operationId: 'createVerification',
      tags: ['verifications'],
      summary: 'Buy a number for a service (Idempotency-Key required)',
      description:
        '201 with the number (state waiting); 202 when the upstream outcome is not known yet (state pending, resolved in the background). ' +
        'The price is held on the wallet and captured only when the SMS arrives. Area codes, carriers and voice add their surcharge to the price; ' +
        'a number the provider assigns outside the area codes or carriers asked for fails the purchase (not charged).',
      security: Security,
      headers: RequiredIdempotencyHeaders,
      body: z.strictObject({
        service: z.string().trim().min(1).max(64),
        country: z.string().regex(/^[A-Z]{2}$/, 'ISO 3166 alpha-2, upper case').optional(),
        max_price_minor: z.number().int().positive().optional().describe('refuse (422) when the price is above this'),
        ...numberOptionFields,
      }),
      response: {
        201: VerificationSchema,
        202: VerificationSchema,
        ...problemResponses(400, 401, 402, 409, 422, 429, 503),
      },
      answers: {
        201: {
          description: 'The number is assigned (state `waiting`); its price is held until the code arrives',
          headers: { Location: true, 'Idempotent-Replayed': false },
        },
        202: {
          description: 'The upstream outcome is not known yet (state `pending`): follow Location or the live events',
          headers: { Location: true, 'Idempotent-Replayed': false },
        },
      },
    },
    handler: async (request, reply) => {
      const me = await requireUser(request);
      const idempotencyKey = parseIdempotencyKey(request.headers['idempotency-key']);
      const outcome = await purchaseVerification(deps, {
        userId: me.userId,
        idempotencyKey,
        service: request.body.service,
        country: request.body.country,
        maxPriceMinor: request.body.max_price_minor,
        options: optionsFromBody(request.body),
      });
      if (outcome.replayed) reply.header('idempotent-replayed', 'true');
      reply.header('location', `/v1/verifications/${outcome.row.id}`);
      return reply.status(outcome.status).send(outcome.view ?? (await viewOf(ctx.database.db, outcome.row)));
    },
  });

  app.get('/v1/verifications', {
    preValidation: requireUser,
    schema: {
      operationId: 'listVerifications',
      tags: ['verifications'],
      summary: 'Your verifications, newest first',
      security: Security,
      querystring: z.strictObject({
        state: z.enum(verificationStates).optional(),
        ...pageQuery({ max: 100, default: 20 }),
      }),
      response: { 200: Page(VerificationSchema), ...problemResponses(400, 401) },
      answers: { 200: { description: 'A page of verifications; `next_cursor` is null on the last page' } },
    },
    handler: async (request) => {
      const me = await requireUser(request);
      const { state, cursor, limit } = request.query;
      const page = await listVerifications(ctx.database.db, { userId: me.userId, state, after: cursor, limit });
      return { items: page.items.map(({ user_email: _email, ...v }) => v), next_cursor: page.nextCursor };
    },
  });

  app.get('/v1/verifications/:id', {
    preValidation: requireUser,
    schema: {
      operationId: 'getVerification',
      tags: ['verifications'],
      summary: 'One verification with its messages and audit trail',
      security: Security,
      params: VerificationId,
      response: { 200: VerificationSchema, ...problemResponses(400, 401, 404) },
      answers: { 200: { description: 'The verification as it is now' } },
    },
    handler: async (request) => {
      const me = await requireUser(request);
      const row = await findCustomerVerification(ctx.database.db, me.userId, request.params.id);
      if (!row) throw new DomainError('not_found', 'no such verification');
      return viewOf(ctx.database.db, row);
    },
  });

  app.post('/v1/verifications/:id/another-code', {
    preValidation: requireUser,
    schema: {
      operationId: 'requestAnotherCode',
      tags: ['verifications'],
      summary: 'Ask for another code on the same number (Idempotency-Key required)',
      description:
        'After a code arrived, asks the upstream for another SMS on the same number while it allows it. The answer is a new ' +
        'verification (`parent_id` names the one that bought the number) waiting for that SMS until its own deadline. ' +
        'Free where the upstream is free (price_minor 0, nothing held: SMS-Activate setStatus 3, TextVerified reuse). Where the ' +
        'upstream charges (DaisySMS extra activation) the new verification holds its price (price_minor, the parent\'s) like a ' +
        'purchase: captured when its SMS arrives, released on cancel or at its deadline; 402 insufficient_funds when the balance ' +
        'is short. 409 invalid_state when no other code is offered now (with Retry-After when the upstream says when to ask ' +
        'again); 503 provider_unavailable, nothing charged, when the upstream did not answer.',
      security: Security,
      headers: RequiredIdempotencyHeaders,
      params: VerificationId,
      response: { 201: VerificationSchema, ...problemResponses(400, 401, 402, 404, 409, 422, 503) },
      answers: {
        201: {
          description: 'The additional code\'s verification (state `waiting`), also when replayed',
          headers: { Location: true, 'Idempotent-Replayed': false },
        },
      },
    },
    handler: async (request, reply) => {
      const me = await requireUser(request);
      const idempotencyKey = parseIdempotencyKey(request.headers['idempotency-key']);
      const outcome = await requestAnotherCode(deps, { userId: me.userId, verificationId: request.params.id, idempotencyKey });
      if (outcome.replayed) reply.header('idempotent-replayed', 'true');
      reply.header('location', `/v1/verifications/${outcome.row.id}`);
      return reply.status(201).send(await viewOf(ctx.database.db, outcome.row));
    },
  });

  app.post('/v1/verifications/:id/report', {
    preValidation: requireUser,
    schema: {
      operationId: 'reportNumber',
      tags: ['verifications'],
      summary: 'Report a bad number: the service rejected it, or the code never came',
      description:
        'A waiting verification is cancelled and its hold released (as a cancel; 409 with the code when the SMS came first). ' +
        'A captured one is reported upstream where the upstream takes reports, and refunded when the upstream refunds it ' +
        '(`refund`: awaiting_upstream, then refunded or declined). Your next purchase of that service refuses that number. ' +
        'One report per verification (a repeat answers the first, 200); at most REPORTS_PER_DAY a day (429 with Retry-After).',
      security: Security,
      params: VerificationId,
      body: z.strictObject({ reason: z.enum(reportReasons) }),
      response: { 200: NumberReportSchema, 201: NumberReportSchema, ...problemResponses(400, 401, 404, 409, 429) },
      answers: {
        201: { description: 'The report, recorded now' },
        200: { description: 'The report made earlier for this verification' },
      },
    },
    handler: async (request, reply) => {
      const me = await requireUser(request);
      const outcome = await reportNumber(deps, { userId: me.userId, verificationId: request.params.id, reason: request.body.reason });
      return reply.status(outcome.created ? 201 : 200).send(reportView(outcome.report));
    },
  });

  app.post('/v1/verifications/:id/cancel', {
    preValidation: requireUser,
    schema: {
      operationId: 'cancelVerification',
      tags: ['verifications'],
      summary: 'Cancel a waiting verification and release its hold',
      description:
        'Idempotent: cancelling a cancelled verification returns it unchanged. When the SMS arrived first the answer is 409 invalid_state with the verification (and its code).',
      security: Security,
      params: VerificationId,
      response: { 200: VerificationSchema, ...problemResponses(400, 401, 404, 409) },
      answers: { 200: { description: 'The cancelled verification (its hold released), also when it was cancelled already' } },
    },
    handler: async (request) => {
      const me = await requireUser(request);
      const row = await findCustomerVerification(ctx.database.db, me.userId, request.params.id);
      if (!row) throw new DomainError('not_found', 'no such verification');
      const result = await cancelVerification(deps, row, 'customer');
      const view = await viewOf(ctx.database.db, result.row);
      if (result.kind === 'too_early') {
        throw new DomainError(
          'cancel_too_early',
          `the provider does not allow cancelling yet; retry in ${result.retryAfterSeconds} s`,
          { verification: view, retry_after_seconds: result.retryAfterSeconds },
          { 'retry-after': String(result.retryAfterSeconds) },
        );
      }
      if (result.kind === 'invalid_state') {
        const detail =
          result.row.state === 'received'
            ? `the code already arrived (${result.row.code ?? 'see messages'}); a received verification cannot be cancelled`
            : `a ${result.row.state} verification cannot be cancelled`;
        throw new DomainError('invalid_state', detail, { verification: view });
      }
      return view;
    },
  });
};

export default verificationRoutes;
