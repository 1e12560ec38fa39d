import { createHash } from 'node:crypto';
import { and, desc, eq, inArray } from 'drizzle-orm';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { DomainError } from '../../errors.ts';
import { parseCode } from '../../providers/sandbox.ts';
import { recordMessages } from '../../verifications/lifecycle.ts';
import { verifications } from '../../verifications/schema.ts';
import { VerificationSchema, viewOf } from '../../verifications/resource.ts';
import { requireUser } from '../auth.ts';
import { problemResponses } from '../problem.ts';
import { Security } from '../schemas.ts';

/**
 * POST /v1/sandbox/sms: deliver a message to one of your sandbox numbers by hand, as the upstream
 * would. Registered only when the sandbox is the configured provider.
 */
const sandboxRoutes: FastifyPluginAsyncZod = async (app) => {
  const { ctx, lifecycle } = app;
  app.post('/v1/sandbox/sms', {
    preValidation: requireUser,
    schema: {
      operationId: 'sandboxDeliverSms',
      tags: ['sandbox'],
      summary: 'Sandbox only: deliver an SMS to one of your sandbox numbers',
      security: Security,
      body: z
        .strictObject({
          verification_id: z.uuid().optional(),
          phone_number: z.string().regex(/^\d{6,15}$/).optional(),
          text: z.string().trim().min(1).max(1000),
        })
        .refine((b) => b.verification_id || b.phone_number, 'give verification_id or phone_number'),
      response: { 200: VerificationSchema, ...problemResponses(400, 401, 404) },
      answers: { 200: { description: 'The verification after the message (captured when it was waiting)' } },
    },
    handler: async (request) => {
      const me = await requireUser(request);
      const { verification_id, phone_number, text } = request.body;
      const [row] = await ctx.database.db
        .select()
        .from(verifications)
        .where(
          and(
            eq(verifications.userId, me.userId),
            // Only the sandbox's own numbers: never a number bought from a real upstream beside it.
            eq(verifications.provider, 'sandbox'),
            verification_id ? eq(verifications.id, verification_id) : eq(verifications.phoneNumber, phone_number!),
            inArray(verifications.state, ['waiting', 'received', 'cancelled', 'expired']),
          ),
        )
        .orderBy(desc(verifications.createdAt))
        .limit(1);
      if (!row) throw new DomainError('not_found', 'no sandbox number of yours matches');
      const now = ctx.clock.now();
      const messageId = `manual:${createHash('sha256').update(`${now.toISOString()}|${text}`).digest('hex').slice(0, 16)}`;
      const result = await recordMessages(lifecycle, row.id, [{ providerMessageId: messageId, text, code: parseCode(text), receivedAt: now }], 'webhook');
      return viewOf(ctx.database.db, result?.row ?? row);
    },
  });
};

export default sandboxRoutes;
