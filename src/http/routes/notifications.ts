import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { DomainError } from '../../errors.ts';
import { listNotifications, markRead } from '../../notifications/notifications.ts';
import { NotificationSchema, notificationResource } from '../../notifications/resource.ts';
import { requireUser } from '../auth.ts';
import { problemResponses } from '../problem.ts';
import { Page, pageQuery, Security } from '../schemas.ts';

/** In-app notifications: one when a code arrives, one when a refund is issued. */
const notificationRoutes: FastifyPluginAsyncZod = async (app) => {
  const { ctx } = app;

  app.get('/v1/notifications', {
    preValidation: requireUser,
    schema: {
      operationId: 'listNotifications',
      tags: ['notifications'],
      summary: 'Your notifications, newest first',
      security: Security,
      querystring: z.strictObject(pageQuery({ max: 100, default: 50 })),
      response: {
        200: Page(NotificationSchema).extend({ unread: z.number().int() }),
        ...problemResponses(400, 401),
      },
      answers: { 200: { description: 'A page of notifications and the number unread' } },
    },
    handler: async (request) => {
      const me = await requireUser(request);
      const { items, nextCursor, unread } = await listNotifications(ctx.database.db, me.userId, {
        limit: request.query.limit,
        after: request.query.cursor,
      });
      return { items: items.map(notificationResource), next_cursor: nextCursor, unread };
    },
  });

  app.post('/v1/notifications/:id/read', {
    preValidation: requireUser,
    schema: {
      operationId: 'markNotificationRead',
      tags: ['notifications'],
      summary: 'Mark a notification read',
      security: Security,
      params: z.strictObject({ id: z.uuid() }),
      response: { 200: NotificationSchema, ...problemResponses(400, 401, 404) },
      answers: { 200: { description: 'The notification, now read' } },
    },
    handler: async (request) => {
      const me = await requireUser(request);
      const row = await markRead(ctx.database.db, me.userId, request.params.id, ctx.clock.now());
      if (!row) throw new DomainError('not_found', 'no such notification');
      return notificationResource(row);
    },
  });
};

export default notificationRoutes;
