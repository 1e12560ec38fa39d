import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from '../../accounts/passwords.ts';
import { AdminUserSchema, adminUserResource, UserSchema, userResource } from '../../accounts/resource.ts';
import { createUser, listUsers } from '../../accounts/users.ts';
import { requireAdmin } from '../auth.ts';
import { problemResponses } from '../problem.ts';
import { Page, pageQuery, Security } from '../schemas.ts';


/** GET /v1/admin/users (with balances), POST /v1/admin/users (create an account; audited). */
const adminUserRoutes: FastifyPluginAsyncZod = async (app) => {
  const { ctx } = app;

  app.get('/v1/admin/users', {
    preValidation: requireAdmin,
    schema: {
      operationId: 'adminListUsers',
      tags: ['admin'],
      summary: 'Users with their balances, newest first',
      security: Security,
      querystring: z.object({
        query: z.string().max(254).optional().describe('part of the email'),
        ...pageQuery({ max: 200, default: 50 }),
      }),
      response: {
        200: Page(AdminUserSchema),
        ...problemResponses(400, 401, 403),
      },
      answers: { 200: { description: 'A page of users with their balances' } },
    },
    handler: async (request) => {
      await requireAdmin(request);
      const { cursor, ...filter } = request.query;
      const page = await listUsers(ctx.database.db, { ...filter, after: cursor });
      return { items: page.items.map(adminUserResource), next_cursor: page.nextCursor };
    },
  });

  app.post('/v1/admin/users', {
    preValidation: requireAdmin,
    schema: {
      operationId: 'adminCreateUser',
      tags: ['admin'],
      summary: 'Create an account (customer or admin) with its wallet',
      security: Security,
      body: z.strictObject({
        email: z.email().max(254),
        password: z.string().min(PASSWORD_MIN_LENGTH).max(PASSWORD_MAX_LENGTH),
        role: z.enum(['customer', 'admin']).default('customer'),
      }),
      response: { 201: z.object({ user: UserSchema }), ...problemResponses(400, 401, 403, 409) },
      answers: { 201: { description: 'The new account (audited)' } },
    },
    handler: async (request, reply) => {
      const admin = await requireAdmin(request);
      const user = await createUser(ctx.database, request.body, {
        currency: ctx.config.CURRENCY,
        now: ctx.clock.now(),
        audit: admin.via === 'ops' ? { actorId: null, actor: 'cli' } : { actorId: admin.userId, actor: 'admin' },
      });
      return reply.status(201).send({ user: userResource(user) });
    },
  });
};

export default adminUserRoutes;
