import { CircuitState, ConsecutiveBreaker, BrokenCircuitError, circuitBreaker, handleWhen, type CircuitBreakerPolicy } from 'cockatiel';
import { libraryClockMs } from '../clock.ts';
import { ProviderError, isProviderError, type Provider } from './provider.ts';

/**
 * A per-provider circuit breaker (cockatiel). Upstream trouble — timeouts, dropped connections,
 * 5xx, unparseable answers, "unavailable" — counts towards opening it; business answers such as
 * "no numbers" or "price above cap" do not, because the upstream is working fine when it says them.
 *
 * While open, calls fail at once with a definite `unavailable` ProviderError: nothing is sent, so
 * nothing can have been bought. After `halfOpenAfterMs` one trial call goes through; success closes it.
 */
export type BreakerState = 'closed' | 'open' | 'half_open' | 'isolated';

const UPSTREAM_TROUBLE = new Set(['timeout', 'connection_lost', 'server_error', 'malformed_response', 'unavailable']);

export function countsAgainstUpstream(error: unknown): boolean {
  return isProviderError(error) ? UPSTREAM_TROUBLE.has(error.code) : true;
}

export interface ProviderBreaker {
  readonly provider: string;
  state(): BreakerState;
  /** Runs an upstream call through the breaker. */
  run<T>(call: () => Promise<T>): Promise<T>;
  /** True when a call would be refused right now without reaching the upstream. */
  isOpen(): boolean;
}

export function createBreaker(provider: string, options: { failureThreshold: number; halfOpenAfterMs: number }): ProviderBreaker {
  const policy: CircuitBreakerPolicy = circuitBreaker(handleWhen(countsAgainstUpstream), {
    halfOpenAfter: options.halfOpenAfterMs,
    breaker: new ConsecutiveBreaker(options.failureThreshold),
  });
  const names: Record<CircuitState, BreakerState> = {
    [CircuitState.Closed]: 'closed',
    [CircuitState.Open]: 'open',
    [CircuitState.HalfOpen]: 'half_open',
    [CircuitState.Isolated]: 'isolated',
  };
  let openedAtMs = 0;
  policy.onBreak(() => {
    openedAtMs = libraryClockMs();
  });
  return {
    provider,
    state: () => names[policy.state],
    isOpen() {
      if (policy.state === CircuitState.Isolated) return true;
      if (policy.state !== CircuitState.Open) return false;
      // cockatiel moves to half-open lazily on the next call; answer as it will.
      return libraryClockMs() - openedAtMs < options.halfOpenAfterMs;
    },
    async run<T>(call: () => Promise<T>): Promise<T> {
      try {
        return await policy.execute(call);
      } catch (error) {
        if (error instanceof BrokenCircuitError) {
          throw new ProviderError('definite', 'unavailable', `${provider} is unavailable (circuit open)`, { cause: error });
        }
        throw error;
      }
    },
  };
}

/** Wraps every upstream call of a provider in its breaker. */
export function withBreaker(provider: Provider, breaker: ProviderBreaker): Provider {
  const guarded: Provider = {
    name: provider.name,
    catalogue: () => breaker.run(() => provider.catalogue()),
    buy: (request) => breaker.run(() => provider.buy(request)),
    lookup: (request) => breaker.run(() => provider.lookup(request)),
    check: (order) => breaker.run(() => provider.check(order)),
    cancel: (id) => breaker.run(() => provider.cancel(id)),
    balance: () => breaker.run(() => provider.balance()),
  };
  if (provider.checkMany) guarded.checkMany = (orders) => breaker.run(() => provider.checkMany!(orders));
  if (provider.complete) guarded.complete = (id) => breaker.run(() => provider.complete!(id));
  if (provider.report) guarded.report = (id) => breaker.run(() => provider.report!(id));
  if (provider.activeOrders) guarded.activeOrders = () => breaker.run(() => provider.activeOrders!());
  return guarded;
}
