import { and, desc, eq, inArray, lte } from 'drizzle-orm';
import type { FastifyPluginAsync } from 'fastify';
import type { Executor } from '../../db/database.ts';
import { DomainError } from '../../errors.ts';
import { MalformedWebhookError, type Provider, type WebhookEvent, type WebhookSms } from '../../providers/provider.ts';
import { recordMessages } from '../../verifications/lifecycle.ts';
import { verifications } from '../../verifications/schema.ts';
import { recordDelivery, wasDelivered } from '../../webhooks/deliveries.ts';

/**
 * Signed webhooks older (or further in the future) than this are not acted on, so a captured one
 * cannot be replayed later. They are still answered 200: an upstream that keeps getting errors for
 * deliveries it retried through an outage disables the endpoint.
 */
const MAX_WEBHOOK_AGE_MS = 6 * 3_600_000;

/**
 * POST /webhooks/providers/:provider — signed upstream webhooks. The route names no vendor: it finds
 * the configured provider by the name in the path and uses its webhook capability to check the
 * signature over the raw bytes (in constant time) and to read the event. Each event is acted on once
 * (by its id and by the upstream's deduplication key); a repeat is acknowledged with 200 and changes
 * nothing, so the upstream stops retrying. A webhook and the poller may both report one SMS: the
 * adapter gives it one identity and the lifecycle's compare-and-set makes that one capture.
 */
const webhookRoutes: FastifyPluginAsync = async (app) => {
  const { ctx } = app;
  // Each provider keeps its own webhook endpoint under its configured name (a drained one too).
  const lifecycle = app.lifecycle;
  const providerNamed = (name: string): Provider | undefined => {
    if (!lifecycle.providers) return lifecycle.provider.name === name ? lifecycle.provider : undefined;
    return lifecycle.providers.member(name) ? lifecycle.providers.get(name) : undefined;
  };
  // Raw bytes for this plugin only: a re-serialised body would not match the signature.
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  app.post<{ Params: { provider: string } }>('/webhooks/providers/:provider', {
    schema: { hide: true },
    handler: async (request, reply) => {
      const provider = providerNamed(request.params.provider);
      // No capability, or no secret configured (the adapter then offers none): nothing listens here.
      const receiver = provider?.webhooks;
      if (!provider || !receiver) throw new DomainError('not_found', `no webhook receiver for ${request.params.provider}`);
      const rawBody = request.body;
      if (!Buffer.isBuffer(rawBody)) throw new DomainError('validation_failed', 'expected an application/json body');
      if (!receiver.verify({ rawBody, headers: request.headers })) {
        throw new DomainError('unauthenticated', 'webhook signature missing or invalid');
      }
      let event: WebhookEvent;
      try {
        event = receiver.parse(rawBody);
      } catch (error) {
        if (error instanceof MalformedWebhookError) throw new DomainError('validation_failed', error.message);
        throw error;
      }
      const now = ctx.clock.now();
      if (Math.abs(now.getTime() - event.occurredAt.getTime()) > MAX_WEBHOOK_AGE_MS) {
        request.log.warn({ provider: provider.name, event: event.eventId, occurredAt: event.occurredAt }, 'webhook outside the accepted age ignored');
        return reply.status(200).send({ status: 'stale' });
      }
      const keys = deliveryKeys(event);
      const db = ctx.database.db;
      for (const key of keys) {
        if (await wasDelivered(db, provider.name, key)) return reply.status(200).send({ status: 'duplicate' });
      }

      let outcome = 'ignored';
      if (event.sms) {
        const target = await findTarget(db, provider.name, event.sms);
        if (target) {
          const result = await recordMessages(app.lifecycle, target, [event.sms.message], 'webhook');
          outcome = result?.captured ? 'captured' : 'recorded';
        } else {
          outcome = 'unmatched';
          request.log.warn({ provider: provider.name, event: event.eventId }, 'webhook SMS matches no verification; the poller will look again');
        }
      }
      for (const key of keys) await recordDelivery(db, provider.name, key, now);
      return reply.status(200).send({ status: outcome });
    },
  });
};

export default webhookRoutes;

/** The event id, and the upstream's deduplication key in its own namespace. */
function deliveryKeys(event: WebhookEvent): string[] {
  return event.dedupeKey === null ? [event.eventId] : [event.eventId, `dedupe:${event.dedupeKey}`];
}

/** The verification an SMS belongs to: by upstream order, else by number — never one bought after it. */
async function findTarget(ex: Executor, provider: string, sms: WebhookSms): Promise<string | undefined> {
  if (sms.providerOrderId) {
    // Additional codes share their parent's order: the SMS is the newest one asked for before it arrived.
    const family = await ex
      .select({ id: verifications.id, createdAt: verifications.createdAt })
      .from(verifications)
      .where(and(eq(verifications.provider, provider), eq(verifications.providerOrderId, sms.providerOrderId)))
      .orderBy(desc(verifications.createdAt));
    const row = family.find((v) => v.createdAt <= sms.message.receivedAt) ?? family.at(-1);
    if (row) return row.id;
  }
  if (!sms.phoneNumber) return undefined;
  const [row] = await ex
    .select({ id: verifications.id })
    .from(verifications)
    .where(
      and(
        eq(verifications.provider, provider),
        eq(verifications.phoneNumber, sms.phoneNumber),
        inArray(verifications.state, ['waiting', 'received', 'cancelled', 'expired']),
        lte(verifications.createdAt, sms.message.receivedAt),
      ),
    )
    .orderBy(desc(verifications.createdAt))
    .limit(1);
  return row?.id;
}
