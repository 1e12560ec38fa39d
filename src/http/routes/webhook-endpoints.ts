import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { Timestamp } from '../../clock.ts';
import { systemResolver } from '../../outbound-webhooks/address-policy.ts';
import { listDeliveries, resendDelivery } from '../../outbound-webhooks/deliveries.ts';
import { createEndpoint, deleteEndpoint, findEndpoint, listEndpoints, rotateSecret, updateEndpoint, type EndpointChecks } from '../../outbound-webhooks/endpoints.ts';
import { deliveryResource, endpointResource, WebhookDeliverySchema, WebhookEndpointSchema } from '../../outbound-webhooks/resource.ts';
import { outboundEventTypes } from '../../outbound-webhooks/schema.ts';
import { forbidCaching, requireUser } from '../auth.ts';
import { problemResponses } from '../problem.ts';
import { Security } from '../schemas.ts';

/**
 * Customers' webhook endpoints (docs/webhooks.md): POST/GET/PATCH/DELETE /v1/webhook-endpoints,
 * secret rotation, the deliveries with every attempt, and a re-send on request.
 */
const Events = z.array(z.enum(outboundEventTypes)).min(1).max(outboundEventTypes.length);
const Url = z.string().trim().min(1).max(2048).describe('https unless the server allows http; never a private address');
const Description = z.string().trim().max(500).nullable();
const Params = z.strictObject({ id: z.uuid() });
const WithSecret = WebhookEndpointSchema.extend({ secret: z.string().describe('whsec_…: shown in this answer only') });

const webhookEndpointRoutes: FastifyPluginAsyncZod = async (app) => {
  const { ctx } = app;
  const checks: EndpointChecks = {
    rules: { allowHttp: ctx.config.WEBHOOK_ALLOW_HTTP, allowPrivate: ctx.config.WEBHOOK_ALLOW_PRIVATE },
    resolve: systemResolver,
  };

  app.post('/v1/webhook-endpoints', {
    preValidation: requireUser,
    schema: {
      operationId: 'createWebhookEndpoint',
      tags: ['webhooks'],
      summary: 'Create a webhook endpoint (its signing secret is shown in this answer only)',
      security: Security,
      body: z.strictObject({ url: Url, events: Events, description: Description.optional(), enabled: z.boolean().default(true) }),
      response: { 201: WithSecret, ...problemResponses(400, 401, 403, 409) },
      answers: { 201: { description: 'The new endpoint with its signing secret, shown this once', headers: { 'Cache-Control': true } } },
    },
    handler: async (request, reply) => {
      const me = await requireUser(request);
      const now = ctx.clock.now();
      const { endpoint, secret } = await createEndpoint(ctx.database.db, me.userId, request.body, checks, now);
      forbidCaching(reply);
      return reply.status(201).send({ ...endpointResource(endpoint, now), secret });
    },
  });

  app.get('/v1/webhook-endpoints', {
    preValidation: requireUser,
    schema: {
      operationId: 'listWebhookEndpoints',
      tags: ['webhooks'],
      summary: 'Your webhook endpoints (never their secrets)',
      security: Security,
      response: { 200: z.object({ items: z.array(WebhookEndpointSchema) }), ...problemResponses(401) },
      answers: { 200: { description: 'Every endpoint of the caller' } },
    },
    handler: async (request) => {
      const me = await requireUser(request);
      const now = ctx.clock.now();
      return { items: (await listEndpoints(ctx.database.db, me.userId)).map((e) => endpointResource(e, now)) };
    },
  });

  app.get('/v1/webhook-endpoints/:id', {
    preValidation: requireUser,
    schema: {
      operationId: 'getWebhookEndpoint',
      tags: ['webhooks'],
      summary: 'One webhook endpoint',
      security: Security,
      params: Params,
      response: { 200: WebhookEndpointSchema, ...problemResponses(400, 401, 404) },
      answers: { 200: { description: 'The endpoint' } },
    },
    handler: async (request) => {
      const me = await requireUser(request);
      return endpointResource(await findEndpoint(ctx.database.db, me.userId, request.params.id), ctx.clock.now());
    },
  });

  app.patch('/v1/webhook-endpoints/:id', {
    preValidation: requireUser,
    schema: {
      operationId: 'updateWebhookEndpoint',
      tags: ['webhooks'],
      summary: 'Change a webhook endpoint (enabling it again clears its failure streak)',
      security: Security,
      params: Params,
      body: z
        .strictObject({ url: Url.optional(), events: Events.optional(), description: Description.optional(), enabled: z.boolean().optional() })
        .refine((b) => Object.keys(b).length > 0, 'name at least one field to change'),
      response: { 200: WebhookEndpointSchema, ...problemResponses(400, 401, 403, 404) },
      answers: { 200: { description: 'The endpoint as changed' } },
    },
    handler: async (request) => {
      const me = await requireUser(request);
      const now = ctx.clock.now();
      return endpointResource(await updateEndpoint(ctx.database.db, me.userId, request.params.id, request.body, checks, now), now);
    },
  });

  app.delete('/v1/webhook-endpoints/:id', {
    preValidation: requireUser,
    schema: {
      operationId: 'deleteWebhookEndpoint',
      tags: ['webhooks'],
      summary: 'Delete a webhook endpoint with its deliveries',
      security: Security,
      params: Params,
      response: { 204: z.undefined(), ...problemResponses(400, 401, 403, 404) },
      answers: { 204: { description: 'Deleted, with its deliveries' } },
    },
    handler: async (request, reply) => {
      const me = await requireUser(request);
      await deleteEndpoint(ctx.database.db, me.userId, request.params.id);
      return reply.status(204).send();
    },
  });

  app.post('/v1/webhook-endpoints/:id/rotate-secret', {
    preValidation: requireUser,
    schema: {
      operationId: 'rotateWebhookEndpointSecret',
      tags: ['webhooks'],
      summary: 'A new signing secret (shown in this answer only); the previous one signs too until previous_secret_expires_at',
      security: Security,
      params: Params,
      body: z
        .strictObject({
          overlap_seconds: z
            .number()
            .int()
            .min(0)
            .max(7 * 86_400)
            .optional()
            .describe('how long the previous secret still signs; WEBHOOK_SECRET_OVERLAP_HOURS by default'),
        })
        .default({}),
      response: { 200: WithSecret, ...problemResponses(400, 401, 403, 404, 409) },
      answers: { 200: { description: 'The endpoint with its new signing secret, shown this once', headers: { 'Cache-Control': true } } },
    },
    handler: async (request, reply) => {
      const me = await requireUser(request);
      const now = ctx.clock.now();
      const overlap = request.body.overlap_seconds ?? ctx.config.WEBHOOK_SECRET_OVERLAP_HOURS * 3600;
      const { endpoint, secret } = await rotateSecret(ctx.database.db, me.userId, request.params.id, overlap, now);
      forbidCaching(reply);
      return { ...endpointResource(endpoint, now), secret };
    },
  });

  app.get('/v1/webhook-endpoints/:id/deliveries', {
    preValidation: requireUser,
    schema: {
      operationId: 'listWebhookDeliveries',
      tags: ['webhooks'],
      summary: "The endpoint's deliveries, newest first, each with every attempt (status, latency, answer excerpt)",
      security: Security,
      params: Params,
      querystring: z.strictObject({ limit: z.coerce.number().int().min(1).max(100).default(50) }),
      response: { 200: z.object({ items: z.array(WebhookDeliverySchema) }), ...problemResponses(400, 401, 404) },
      answers: { 200: { description: 'Deliveries newest first, each with its attempts' } },
    },
    handler: async (request) => {
      const me = await requireUser(request);
      const found = await listDeliveries(ctx.database.db, me.userId, request.params.id, request.query.limit);
      return { items: found.map(deliveryResource) };
    },
  });

  app.post('/v1/webhook-endpoints/:id/deliveries/:event_id/resend', {
    preValidation: requireUser,
    schema: {
      operationId: 'resendWebhookEvent',
      tags: ['webhooks'],
      summary: 'Send an event to the endpoint again (a new retry schedule, due now)',
      security: Security,
      params: z.strictObject({ id: z.uuid(), event_id: z.string().regex(/^evt_[0-9a-f]{32}$/) }),
      response: {
        202: z.object({ event_id: z.string(), status: z.literal('pending'), next_attempt_at: Timestamp }),
        ...problemResponses(400, 401, 403, 404, 409),
      },
      answers: { 202: { description: 'The event is due for delivery again' } },
    },
    handler: async (request, reply) => {
      const me = await requireUser(request);
      const now = ctx.clock.now();
      const row = await resendDelivery(ctx.database.db, me.userId, request.params.id, request.params.event_id, now);
      return reply.status(202).send({ event_id: row.eventId, status: 'pending' as const, next_attempt_at: row.nextAttemptAt!.toISOString() });
    },
  });
};

export default webhookEndpointRoutes;
