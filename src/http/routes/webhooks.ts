import { createHash } from 'node:crypto';
import { and, desc, eq, inArray, lte, sql } from 'drizzle-orm';
import type { FastifyPluginAsync } from 'fastify';
import { DomainError } from '../../errors.ts';
import {
  isSmsReceivedEvent,
  MalformedWebhookError,
  parseTextVerifiedWebhook,
  verifyTextVerifiedWebhook,
  type TextVerifiedWebhookSms,
} from '../../providers/textverified/webhook.ts';
import { recordMessages } from '../../verifications/lifecycle.ts';
import { verifications } from '../../verifications/schema.ts';
import { recordDelivery, wasDelivered } from '../../webhooks/deliveries.ts';
import type { Executor } from '../../db/database.ts';

/** Signed webhooks older than this are refused outright, so a captured one cannot be replayed later. */
const MAX_WEBHOOK_AGE_MS = 6 * 3_600_000;

/**
 * POST /webhooks/providers/:provider — signed upstream webhooks (TextVerified `v2.sms.received`).
 * The signature is checked over the raw bytes in constant time; each event id is acted on once
 * (a repeat is acknowledged with 200 and changes nothing, so the upstream stops retrying). A webhook
 * and the poller may both report one SMS: the lifecycle's compare-and-set makes that one capture.
 */
const webhookRoutes: FastifyPluginAsync = async (app) => {
  const { ctx } = app;
  // Raw bytes for this plugin only: a re-serialised body would not match the signature.
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  app.post<{ Params: { provider: string } }>('/webhooks/providers/:provider', {
    schema: { hide: true },
    handler: async (request, reply) => {
      const secret = ctx.config.TEXTVERIFIED_WEBHOOK_SECRET;
      if (request.params.provider !== 'textverified' || ctx.config.PROVIDER !== 'textverified' || !secret) {
        throw new DomainError('not_found', `no webhook receiver for ${request.params.provider}`);
      }
      const raw = request.body;
      if (!Buffer.isBuffer(raw)) throw new DomainError('validation_failed', 'expected an application/json body');
      const signature = request.headers['x-webhook-signature'];
      if (!verifyTextVerifiedWebhook({ rawBody: raw, signatureHeader: typeof signature === 'string' ? signature : undefined, secret })) {
        throw new DomainError('unauthenticated', 'webhook signature missing or invalid');
      }
      let event;
      try {
        event = parseTextVerifiedWebhook(raw);
      } catch (error) {
        if (error instanceof MalformedWebhookError) throw new DomainError('validation_failed', error.message);
        throw error;
      }
      const now = ctx.clock.now();
      if (Math.abs(now.getTime() - event.occurredAt.getTime()) > MAX_WEBHOOK_AGE_MS) {
        throw new DomainError('validation_failed', 'webhook is too old (or from the future) to be accepted');
      }
      if (await wasDelivered(ctx.database.db, 'textverified', event.id)) return reply.status(200).send({ status: 'duplicate' });

      let outcome = 'ignored';
      if (isSmsReceivedEvent(event)) {
        const target = await findTarget(ctx.database.db, event.data);
        if (target) {
          const sms = event.data;
          const result = await recordMessages(
            app.lifecycle,
            target,
            [
              {
                providerMessageId: sms.id ?? createHash('sha256').update(`${sms.to}|${sms.createdAt.toISOString()}|${sms.smsContent}`).digest('hex'),
                text: sms.smsContent ?? '',
                code: sms.parsedCode,
                receivedAt: sms.createdAt,
              },
            ],
            'webhook',
          );
          outcome = result?.captured ? 'captured' : 'recorded';
        } else {
          outcome = 'unmatched';
          request.log.warn({ event: event.id }, 'webhook SMS matches no verification; the poller will look again');
        }
      }
      await recordDelivery(ctx.database.db, 'textverified', event.id, now);
      return reply.status(200).send({ status: outcome });
    },
  });
};

export default webhookRoutes;

/** The verification an SMS belongs to: by reservation id, else by number — never one bought after it. */
async function findTarget(ex: Executor, sms: TextVerifiedWebhookSms): Promise<string | undefined> {
  if (sms.reservationId) {
    const [row] = await ex
      .select({ id: verifications.id })
      .from(verifications)
      .where(and(eq(verifications.provider, 'textverified'), eq(verifications.providerOrderId, sms.reservationId)));
    if (row) return row.id;
  }
  const digits = sms.to.replace(/\D/g, '');
  const [row] = await ex
    .select({ id: verifications.id })
    .from(verifications)
    .where(
      and(
        eq(verifications.provider, 'textverified'),
        // Upstreams write numbers with or without the country code: compare the national part.
        sql`right(regexp_replace(${verifications.phoneNumber}, '\\D', '', 'g'), 10) = right(${digits}, 10)`,
        inArray(verifications.state, ['waiting', 'received', 'cancelled', 'expired']),
        lte(verifications.createdAt, sms.createdAt),
      ),
    )
    .orderBy(desc(verifications.createdAt))
    .limit(1);
  return row?.id;
}
