import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { createApiKey, listApiKeys, revokeApiKey } from '../../accounts/api-keys.ts';
import { apiKeyLimits, consumeAttempt } from '../../accounts/throttle.ts';
import { clientAddress, forbidCaching, requireUser } from '../auth.ts';
import { problemResponses } from '../problem.ts';
import { Timestamp } from '../../clock.ts';
import { Security } from '../schemas.ts';

const ApiKeySchema = z.object({
  id: z.uuid(),
  name: z.string(),
  prefix: z.string().describe('the first characters of the key, to tell keys apart'),
  created_at: Timestamp,
  last_used_at: Timestamp.nullable(),
  revoked_at: Timestamp.nullable(),
});

const iso = (d: Date | null) => (d ? d.toISOString() : null);

/** POST/GET /v1/api-keys, DELETE /v1/api-keys/:id. */
const apiKeyRoutes: FastifyPluginAsyncZod = async (app) => {
  const { ctx } = app;

  app.post('/v1/api-keys', {
    preValidation: requireUser,
    schema: {
      operationId: 'createApiKey',
      tags: ['api keys'],
      summary: 'Create an API key (the key is shown in this answer only)',
      security: Security,
      body: z.strictObject({ name: z.string().trim().min(1).max(100).default('API key') }),
      response: {
        201: z.object({ id: z.uuid(), name: z.string(), prefix: z.string(), created_at: Timestamp, key: z.string() }),
        ...problemResponses(400, 401, 403, 409, 429),
      },
      answers: { 201: { description: 'The new key, shown this once', headers: { 'Cache-Control': true } } },
    },
    handler: async (request, reply) => {
      const me = await requireUser(request);
      const now = ctx.clock.now();
      await consumeAttempt(ctx.database.db, apiKeyLimits(ctx.config, { userId: me.userId, address: clientAddress(request) }), now);
      const key = await createApiKey(ctx.database.db, me.userId, request.body.name, now);
      forbidCaching(reply);
      return reply
        .status(201)
        .send({ id: key.id, name: key.name, prefix: key.prefix, created_at: key.createdAt.toISOString(), key: key.key });
    },
  });

  app.get('/v1/api-keys', {
    preValidation: requireUser,
    schema: {
      operationId: 'listApiKeys',
      tags: ['api keys'],
      summary: "The caller's API keys (never the keys themselves)",
      security: Security,
      response: { 200: z.object({ items: z.array(ApiKeySchema) }), ...problemResponses(401) },
      answers: { 200: { description: 'Every key of the caller, revoked ones included' } },
    },
    handler: async (request) => {
      const me = await requireUser(request);
      const keys = await listApiKeys(ctx.database.db, me.userId);
      return {
        items: keys.map((k) => ({
          id: k.id,
          name: k.name,
          prefix: k.prefix,
          created_at: k.createdAt.toISOString(),
          last_used_at: iso(k.lastUsedAt),
          revoked_at: iso(k.revokedAt),
        })),
      };
    },
  });

  app.delete('/v1/api-keys/:id', {
    preValidation: requireUser,
    schema: {
      operationId: 'revokeApiKey',
      tags: ['api keys'],
      summary: 'Revoke an API key',
      security: Security,
      params: z.strictObject({ id: z.uuid() }),
      response: { 204: z.undefined(), ...problemResponses(400, 401, 403, 404) },
      answers: { 204: { description: 'Revoked: the key stops working at once' } },
    },
    handler: async (request, reply) => {
      const me = await requireUser(request);
      await revokeApiKey(ctx.database.db, me.userId, request.params.id, ctx.clock.now());
      return reply.status(204).send();
    },
  });
};

export default apiKeyRoutes;
