import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { normalizeEmail } from '../../accounts/users.ts';
import { Timestamp } from '../../clock.ts';
import { listOutbox } from '../../mail/mailer.ts';
import { forbidCaching, requireAdmin } from '../auth.ts';
import { problemResponses } from '../problem.ts';
import { Page, pageQuery, Security } from '../schemas.ts';

const OutboxMailSchema = z
  .object({ id: z.uuid(), to: z.string(), subject: z.string(), body: z.string(), created_at: Timestamp })
  .meta({ id: 'OutboxMail' });

/**
 * GET /v1/admin/mail: the local outbox, where mail goes when no SMTP_URL is configured. It holds
 * working links (verification, password reset), so only admins read it, and never from a cache.
 */
const adminMailRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get('/v1/admin/mail', {
    preValidation: requireAdmin,
    schema: {
      operationId: 'listOutboxMail',
      tags: ['admin'],
      summary: 'Mail kept in the local outbox (no SMTP_URL), newest first',
      security: Security,
      querystring: z.strictObject({ to: z.string().max(254).optional().describe('only mail to this address'), ...pageQuery({ max: 200, default: 50 }) }),
      response: {
        200: Page(OutboxMailSchema).extend({ transport: z.enum(['smtp', 'outbox']) }),
        ...problemResponses(400, 401, 403),
      },
      answers: { 200: { description: 'Mail kept in the local outbox, newest first', headers: { 'Cache-Control': true } } },
    },
    handler: async (request, reply) => {
      await requireAdmin(request);
      const page = await listOutbox(app.ctx.database.db, {
        recipient: request.query.to ? normalizeEmail(request.query.to) : undefined,
        after: request.query.cursor,
        limit: request.query.limit,
      });
      forbidCaching(reply);
      return {
        transport: app.mailer.transport,
        items: page.items.map((m) => ({ id: m.id, to: m.recipient, subject: m.subject, body: m.body, created_at: m.createdAt.toISOString() })),
        next_cursor: page.nextCursor,
      };
    },
  });
};

export default adminMailRoutes;
