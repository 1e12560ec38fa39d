import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { createApiKey, listApiKeys, revokeApiKey } from '../../accounts/api-keys.ts';
import { apiKeyLimits, consumeAttempt } from '../../accounts/throttle.ts';
import { recordAudit } from '../../accounts/audit.ts';
import { newApiKeyNotice, noticeMail } from '../../accounts/notices.ts';
import { findUser } from '../../accounts/users.ts';
import { clientAddress, forbidCaching, requireRecentSignIn, requireUser } from '../auth.ts';
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
      description:
        'Needs a session signed in within RECENT_SIGN_IN_MINUTES (403 `reauthentication_required`: POST /v1/auth/reauthenticate); ' +
        'an API key cannot create keys. The owner is told of every new key by email.',
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
      requireRecentSignIn(request, me);
      const now = ctx.clock.now();
      await consumeAttempt(ctx.database.db, apiKeyLimits(ctx.config, { userId: me.userId, address: clientAddress(request) }), now);
      const key = await ctx.database.transaction(async (tx) => {
        const created = await createApiKey(tx, me.userId, request.body.name, now);
        await recordAudit(tx, {
          actorId: me.userId,
          actor: me.via === 'ops' ? 'cli' : 'customer',
          action: 'api_key.create',
          subjectId: me.userId,
          detail: { api_key_id: created.id, name: created.name, prefix: created.prefix },
          now,
        });
        return created;
      });
      // By email only: whoever is watching the dashboard just made the key; the email reaches the
      // owner when someone else did.
      const owner = await findUser(ctx.database.db, me.userId);
      if (owner) app.mailer.dispatch(() => app.mailer.send(noticeMail(owner.email, newApiKeyNotice(key.name, key.prefix, now))));
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
      const now = ctx.clock.now();
      await ctx.database.transaction(async (tx) => {
        await revokeApiKey(tx, me.userId, request.params.id, now);
        await recordAudit(tx, {
          actorId: me.userId,
          actor: me.via === 'ops' ? 'cli' : 'customer',
          action: 'api_key.revoke',
          subjectId: me.userId,
          detail: { api_key_id: request.params.id },
          now,
        });
      });
      return reply.status(204).send();
    },
  });
};

export default apiKeyRoutes;
