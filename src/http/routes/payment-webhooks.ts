import type { FastifyPluginAsync } from 'fastify';
import { DomainError } from '../../errors.ts';
import { WebhookRejected } from '../../payments/processor.ts';
import { processorNames, type ProcessorName } from '../../payments/schema.ts';
import { applyPaymentEvent } from '../../payments/settlement.ts';

/**
 * POST /webhooks/payments/:processor — the processors' signed events. The processor's own check
 * runs over the raw bytes (Stripe's SDK, Paystack's HMAC-SHA512, the sandbox's HMAC); anything it
 * refuses is 401 and changes nothing. A verified event is applied once (its id is a primary key in
 * payment_events): a repeat is acknowledged with 200 `duplicate`, so the processor stops retrying.
 */
const paymentWebhookRoutes: FastifyPluginAsync = async (app) => {
  const { ctx, payments } = app;
  // Raw bytes for this plugin only: a re-serialised body would not match the signature.
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  app.post<{ Params: { processor: string } }>('/webhooks/payments/:processor', {
    schema: { hide: true },
    handler: async (request, reply) => {
      const name = request.params.processor as ProcessorName;
      const processor = processorNames.includes(name) ? payments.processors.get(name) : undefined;
      if (!processor) throw new DomainError('not_found', `no payment webhooks for ${request.params.processor}`);
      const rawBody = request.body;
      if (!Buffer.isBuffer(rawBody)) throw new DomainError('validation_failed', 'expected an application/json body');
      const now = ctx.clock.now();
      let event;
      try {
        event = processor.receiveWebhook({ rawBody, headers: request.headers, now });
      } catch (error) {
        if (error instanceof WebhookRejected) {
          request.log.warn({ processor: name, reason: error.message }, 'payment webhook refused');
          throw new DomainError('unauthenticated', 'webhook signature missing or invalid');
        }
        throw error;
      }
      const result = await applyPaymentEvent(ctx.database, name, event, now);
      if (result.outcome === 'mismatch' || result.outcome === 'unknown_top_up') {
        request.log.warn({ processor: name, event: event.eventId, outcome: result.outcome }, 'payment event recorded for review');
      }
      return reply.status(200).send({ status: result.outcome, top_up_id: result.topUpId });
    },
  });
};

export default paymentWebhookRoutes;
