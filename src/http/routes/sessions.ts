import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { recordAudit } from '../../accounts/audit.ts';
import { listActiveSessions, revokeAllSessions, revokeOwnSession } from '../../accounts/sessions.ts';
import { Timestamp } from '../../clock.ts';
import { clearSessionCookies, currentSessionId, requireUser } from '../auth.ts';
import { problemResponses } from '../problem.ts';
import { Security } from '../schemas.ts';

const SessionSchema = z
  .object({
    id: z.uuid(),
    device: z.string().nullable().describe("the browser or tool, as its User-Agent said when it signed in"),
    address: z.string().nullable().describe('the client address it signed in from'),
    created_at: Timestamp,
    last_seen_at: Timestamp,
    expires_at: Timestamp,
    current: z.boolean().describe('the session this request was made with'),
  })
  .meta({ id: 'Session' });

/** GET /v1/sessions, DELETE /v1/sessions/:id, POST /v1/sessions/revoke-all ("sign out everywhere"). */
const sessionRoutes: FastifyPluginAsyncZod = async (app) => {
  const { ctx } = app;

  app.get('/v1/sessions', {
    preValidation: requireUser,
    schema: {
      operationId: 'listSessions',
      tags: ['account'],
      summary: 'Your signed-in sessions (device, address, last seen), newest first',
      security: Security,
      response: { 200: z.object({ items: z.array(SessionSchema) }), ...problemResponses(401) },
      answers: { 200: { description: "The account's active sessions, the current one marked" } },
    },
    handler: async (request) => {
      const me = await requireUser(request);
      const current = currentSessionId(request);
      const found = await listActiveSessions(ctx.database.db, me.userId, ctx.clock.now());
      return {
        items: found.map((s) => ({
          id: s.id,
          device: s.userAgent,
          address: s.address,
          created_at: s.createdAt.toISOString(),
          last_seen_at: s.lastSeenAt.toISOString(),
          expires_at: s.expiresAt.toISOString(),
          current: s.id === current,
        })),
      };
    },
  });

  app.delete('/v1/sessions/:id', {
    preValidation: requireUser,
    schema: {
      operationId: 'endSession',
      tags: ['account'],
      summary: 'Sign one session out',
      security: Security,
      params: z.strictObject({ id: z.uuid() }),
      response: { 204: z.undefined(), ...problemResponses(400, 401, 403, 404) },
      answers: { 204: { description: 'The session is ended (its cookies cleared when it is this one)', headers: { 'Set-Cookie': false } } },
    },
    handler: async (request, reply) => {
      const me = await requireUser(request);
      const now = ctx.clock.now();
      await ctx.database.transaction(async (tx) => {
        await revokeOwnSession(tx, me.userId, request.params.id, now);
        await recordAudit(tx, {
          actorId: me.userId,
          actor: 'customer',
          action: 'user.session_revoked',
          subjectId: me.userId,
          detail: { session_id: request.params.id },
          now,
        });
      });
      if (request.params.id === currentSessionId(request)) clearSessionCookies(request, reply, ctx.config);
      return reply.status(204).send();
    },
  });

  app.post('/v1/sessions/revoke-all', {
    preValidation: requireUser,
    schema: {
      operationId: 'endAllSessions',
      tags: ['account'],
      summary: 'Sign out everywhere: every session ends, this one too (API keys are not affected)',
      security: Security,
      response: { 200: z.object({ ended: z.number().int() }), ...problemResponses(401, 403) },
      answers: { 200: { description: 'How many sessions were ended' } },
    },
    handler: async (request, reply) => {
      const me = await requireUser(request);
      const now = ctx.clock.now();
      const ended = await ctx.database.transaction(async (tx) => {
        const count = await revokeAllSessions(tx, me.userId, now);
        await recordAudit(tx, { actorId: me.userId, actor: 'customer', action: 'user.signed_out_everywhere', subjectId: me.userId, detail: { sessions_ended: count }, now });
        return count;
      });
      clearSessionCookies(request, reply, ctx.config);
      return { ended };
    },
  });
};

export default sessionRoutes;
