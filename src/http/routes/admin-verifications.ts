import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { verificationStates } from '../../verifications/schema.ts';
import { AdminVerificationSchema, listVerifications } from '../../verifications/resource.ts';
import { requireAdmin } from '../auth.ts';
import { problemResponses } from '../problem.ts';
import { Page, pageQuery, Security } from '../schemas.ts';

/** GET /v1/admin/verifications: search every customer's verifications. */
const adminVerificationRoutes: FastifyPluginAsyncZod = async (app) => {
  const { ctx } = app;
  app.get('/v1/admin/verifications', {
    preValidation: requireAdmin,
    schema: {
      operationId: 'adminListVerifications',
      tags: ['admin'],
      summary: 'Search verifications of all customers',
      security: Security,
      querystring: z.strictObject({
        state: z.enum(verificationStates).optional(),
        email: z.string().trim().min(1).max(254).optional(),
        service: z.string().trim().min(1).max(64).optional(),
        ...pageQuery({ max: 100, default: 50 }),
      }),
      response: {
        200: Page(AdminVerificationSchema),
        ...problemResponses(400, 401, 403),
      },
      answers: { 200: { description: 'A page of verifications with their customers' } },
    },
    handler: async (request) => {
      await requireAdmin(request);
      const { cursor, ...filter } = request.query;
      const page = await listVerifications(ctx.database.db, { ...filter, after: cursor });
      return { items: page.items, next_cursor: page.nextCursor };
    },
  });
};

export default adminVerificationRoutes;
