import type { AppContext } from './context.ts';
import { Engine } from './engine/engine.ts';
import type { WebhookDeliveryOptions } from './engine/webhook-delivery.ts';
import { EventHub } from './events/bus.ts';
import { createBreaker, withBreaker, type ProviderBreaker } from './providers/breaker.ts';
import { LiveProviderControls } from './providers/controls.ts';
import type { Provider } from './providers/provider.ts';
import { createProvider } from './providers/registry.ts';
import type { LifecycleDeps } from './verifications/lifecycle.ts';

/**
 * Part of the composition root (with server.ts): everything the verification lifecycle needs at
 * run time — the provider behind its breaker, the background engine and the live-event hub — built
 * once per process and handed down. Nothing below this floor builds any of it.
 */
export interface VerificationRuntime {
  deps: LifecycleDeps;
  /**
   * What the background engine runs with: the same, except that every upstream call is bounded by
   * PROVIDER_TIMEOUT_MS, so a provider that never answers cannot stall expiry and refunds.
   */
  engineDeps: LifecycleDeps;
  breaker: ProviderBreaker;
  /** The upstream itself, without the breaker: for reads that must not trip it (the balance metric). */
  upstream: Provider;
  engine: Engine;
  hub: EventHub;
  /**
   * The operator's per-provider switches (also `deps.controls`), kept fresh in this process once
   * started: startServer and startWorker start and stop it; anything else that buys must too.
   */
  controls: LiveProviderControls;
}

export function createVerificationRuntime(
  ctx: AppContext,
  options: { provider?: Provider; faults?: LifecycleDeps['faults']; workerId?: string; webhooks?: WebhookDeliveryOptions } = {},
): VerificationRuntime {
  const upstream = options.provider ?? createProvider(ctx.config, ctx.clock, { logger: ctx.logger });
  const breaker = createBreaker(upstream.name, {
    failureThreshold: ctx.config.BREAKER_FAILURE_THRESHOLD,
    halfOpenAfterMs: ctx.config.BREAKER_HALF_OPEN_AFTER_MS,
  });
  const controls = new LiveProviderControls(ctx.database, {
    onError: (error) => ctx.logger.warn({ err: error }, 'could not re-read the provider controls'),
  });
  const deps: LifecycleDeps = {
    database: ctx.database,
    clock: ctx.clock,
    config: ctx.config,
    provider: withBreaker(upstream, breaker),
    breaker,
    controls,
    logger: ctx.logger,
    faults: options.faults,
  };
  const engineDeps: LifecycleDeps = {
    ...deps,
    provider: withBreaker(upstream, breaker, { callTimeoutMs: ctx.config.PROVIDER_TIMEOUT_MS }),
  };
  return {
    deps,
    engineDeps,
    breaker,
    upstream,
    engine: new Engine(engineDeps, { workerId: options.workerId, webhooks: options.webhooks, upstreams: [upstream] }),
    hub: new EventHub(),
    controls,
  };
}
