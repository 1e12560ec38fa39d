import type { AppContext } from './context.ts';
import { Engine } from './engine/engine.ts';
import type { WebhookDeliveryOptions } from './engine/webhook-delivery.ts';
import { EventHub } from './events/bus.ts';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { createBreaker, type ProviderBreaker } from './providers/breaker.ts';
import { LiveProviderControls } from './providers/controls.ts';
import { databaseBreakerStore } from './providers/breaker-store.ts';
import type { Provider, ProviderKind } from './providers/provider.ts';
import { createProvider } from './providers/registry.ts';
import { ProviderSet, type ProviderMember } from './providers/set.ts';
import { canBuild, configuredProviders } from './providers/settings.ts';
import type { LifecycleDeps } from './verifications/lifecycle.ts';

/**
 * Part of the composition root (with server.ts): everything the verification lifecycle needs at
 * run time — the configured providers, each behind its own breaker, the background engine and the
 * live-event hub — built once per process and handed down. Nothing below this floor builds any of it.
 */
export interface VerificationRuntime {
  deps: LifecycleDeps;
  /**
   * What the background engine runs with: the same, except that every upstream call is bounded by
   * PROVIDER_TIMEOUT_MS, so a provider that never answers cannot stall expiry and refunds.
   */
  engineDeps: LifecycleDeps;
  /** Every provider, in order of preference, with its breaker (and the drained ones once built). */
  providers: ProviderSet;
  /** The preferred provider's breaker. */
  breaker: ProviderBreaker;
  /** The preferred upstream itself, without the breaker: for reads that must not trip it. */
  upstream: Provider;
  engine: Engine;
  hub: EventHub;
  /**
   * The operator's per-provider switches (also `deps.controls`), kept fresh in this process once
   * started: startServer and startWorker start and stop it; anything else that buys must too.
   */
  controls: LiveProviderControls;
}

const KINDS: readonly ProviderKind[] = ['sandbox', 'textverified', 'sms-activate'];

export function createVerificationRuntime(
  ctx: AppContext,
  options: {
    /** Replaces the configured providers by this one (tests: a scripted or fake upstream). */
    provider?: Provider;
    /** Replaces the configured providers by these, in order of preference. */
    providers?: readonly Provider[];
    faults?: LifecycleDeps['faults'];
    controls?: LifecycleDeps['controls'];
    workerId?: string;
    webhooks?: WebhookDeliveryOptions;
  } = {},
): VerificationRuntime {
  const { config, clock, logger } = ctx;
  // On PostgreSQL several processes call the same upstreams: a breaker opened in one is known to all.
  const shared =
    ctx.database.engine === 'postgres'
      ? {
          store: databaseBreakerStore(ctx.database, `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`),
          onError: (error: unknown) => logger.warn({ err: error }, 'could not share a breaker state through the database'),
        }
      : undefined;
  const breakerOptions = { failureThreshold: config.BREAKER_FAILURE_THRESHOLD, halfOpenAfterMs: config.BREAKER_HALF_OPEN_AFTER_MS, shared };
  const member = (upstream: Provider): Omit<ProviderMember, 'mode'> => ({
    name: upstream.name,
    // A test double states no kind: taken for its name's when that is a protocol, else the sandbox's.
    kind: upstream.kind ?? (KINDS.includes(upstream.name as ProviderKind) ? (upstream.name as ProviderKind) : 'sandbox'),
    upstream,
    breaker: createBreaker(upstream.name, breakerOptions),
  });
  const given = options.providers ?? (options.provider ? [options.provider] : undefined);
  const upstreams = given ?? configuredProviders(config).map((name) => createProvider(config, clock, { logger, name }));
  const providers = ProviderSet.of(upstreams.map(member), (name) => {
    // A provider removed from the list whose orders are still open: built from its credentials.
    if (!canBuild(config, name)) return undefined;
    logger.warn({ provider: name }, 'provider not in PROVIDERS still has orders: draining it (no new purchases)');
    return member(createProvider(config, clock, { logger, name }));
  });
  const preferred = providers.active()[0]!;
  const controls = new LiveProviderControls(ctx.database, {
    onError: (error) => logger.warn({ err: error }, 'could not re-read the provider controls'),
  });
  const deps: LifecycleDeps = {
    database: ctx.database,
    clock,
    config,
    provider: providers.get(preferred.name),
    breaker: preferred.breaker,
    providers,
    controls: options.controls ?? controls,
    logger,
    faults: options.faults,
  };
  const engineProviders = providers.withCallTimeout(config.PROVIDER_TIMEOUT_MS);
  const engineDeps: LifecycleDeps = { ...deps, providers: engineProviders, provider: engineProviders.get(preferred.name) };
  return {
    deps,
    engineDeps,
    providers,
    breaker: preferred.breaker,
    upstream: preferred.upstream,
    engine: new Engine(engineDeps, { workerId: options.workerId, webhooks: options.webhooks, upstreams: providers.all().map((m) => m.upstream) }),
    hub: new EventHub(),
    controls,
  };
}
