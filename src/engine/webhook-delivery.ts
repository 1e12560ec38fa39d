import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import type { Config } from '../config.ts';
import type { Database } from '../db/database.ts';
import { notify } from '../notifications/notifications.ts';
import { systemResolver, type ResolveHost } from '../outbound-webhooks/address-policy.ts';
import { claimDueDeliveries, recordAttempt, releaseDelivery, type AttemptResult, type ClaimedDelivery } from '../outbound-webhooks/deliveries.ts';
import { signingSecrets } from '../outbound-webhooks/endpoints.ts';
import { attemptDelivery } from '../outbound-webhooks/sender.ts';

/**
 * The engine's delivery of customers' webhooks (docs/webhooks.md): claims due deliveries, makes
 * each attempt outside any transaction, and records it. A receiver that is slow, down or hostile
 * costs attempts and nothing else: the state changes the events report committed long before.
 */
export interface WebhookDeliveryDeps {
  database: Database;
  clock: Clock;
  config: Config;
  logger: Logger;
}

export interface WebhookDeliveryOptions {
  /** The resolver for the send-time address check (tests inject one). */
  resolveHost?: ResolveHost;
  /** Jitter source in [0, 1). */
  random?: () => number;
}

export class WebhookDelivery {
  private readonly resolve: ResolveHost;
  private readonly random: () => number;

  constructor(
    private readonly deps: WebhookDeliveryDeps,
    private readonly workerId: string,
    options: WebhookDeliveryOptions = {},
  ) {
    this.resolve = options.resolveHost ?? systemResolver;
    this.random = options.random ?? Math.random;
  }

  /** Due deliveries, leased to this worker for longer than an attempt can take. */
  claim(limit: number): Promise<ClaimedDelivery[]> {
    const { database, clock, config } = this.deps;
    const leaseMs = config.LEASE_SECONDS * 1000 + config.WEBHOOK_TIMEOUT_MS;
    return claimDueDeliveries(database.db, { workerId: this.workerId, now: clock.now(), leaseMs, limit });
  }

  /** One attempt of a claimed delivery, recorded; the owner is told when the endpoint gets disabled. */
  async deliver(delivery: ClaimedDelivery): Promise<AttemptResult> {
    const { database, clock, config, logger } = this.deps;
    try {
      const outcome = await attemptDelivery({
        url: delivery.url,
        eventId: delivery.eventId,
        body: delivery.body,
        secrets: signingSecrets(delivery, clock.now()),
        rules: { allowHttp: config.WEBHOOK_ALLOW_HTTP, allowPrivate: config.WEBHOOK_ALLOW_PRIVATE },
        resolve: this.resolve,
        timeoutMs: config.WEBHOOK_TIMEOUT_MS,
        maxBytes: config.WEBHOOK_RESPONSE_MAX_BYTES,
      });
      const now = clock.now();
      return await database.transaction(async (tx) => {
        const result = await recordAttempt(tx, delivery, {
          workerId: this.workerId,
          now,
          succeeded: outcome.succeeded,
          status: outcome.status,
          latencyMs: outcome.latencyMs,
          excerpt: outcome.excerpt,
          error: outcome.error,
          random: this.random(),
          disableAfterMs: config.WEBHOOK_DISABLE_AFTER_HOURS * 3_600_000,
        });
        if (result.recorded && result.disabled) {
          await notify(tx, {
            userId: result.disabled.userId,
            verificationId: null,
            kind: 'webhook_endpoint_disabled',
            title: 'Webhook endpoint disabled',
            body: `${result.disabled.url} was disabled: ${result.disabled.disabledReason}. Fix it and enable it again; events can be re-sent.`,
            now,
          });
        }
        return result;
      });
    } catch (error) {
      logger.error({ err: error, endpoint: delivery.endpointId, event: delivery.eventId }, 'webhook delivery could not be recorded');
      try {
        await releaseDelivery(database.db, delivery, this.workerId);
      } catch {
        // The lease lapses on its own.
      }
      return { recorded: false };
    }
  }
}
