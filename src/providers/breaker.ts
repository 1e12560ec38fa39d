import { CircuitState, ConsecutiveBreaker, BrokenCircuitError, circuitBreaker, handleWhen, type CircuitBreakerPolicy } from 'cockatiel';
import { libraryClockMs } from '../clock.ts';
import type { BreakerStore } from './breaker-store.ts';
import { ProviderError, isProviderError, type Provider } from './provider.ts';

/**
 * A per-provider circuit breaker (cockatiel). Upstream trouble — timeouts, dropped connections,
 * 5xx, unparseable answers, "unavailable" — counts towards opening it; business answers such as
 * "no numbers", "price above cap", "gone" or a refusal in a seller's own word do not, because the
 * upstream is working fine when it says them.
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

/** How often, at most, a breaker reads what the other processes say about its provider. */
export const SHARED_BREAKER_REFRESH_MS = 1000;

export function createBreaker(
  provider: string,
  options: {
    failureThreshold: number;
    halfOpenAfterMs: number;
    /**
     * Shared with the other processes (PostgreSQL): opening or closing here is written there, and a
     * breaker another process opened refuses calls here too until its half-open time.
     */
    shared?: { store: BreakerStore; onError?: (error: unknown) => void };
  },
): ProviderBreaker {
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
  const shared = options.shared;
  // What the other processes said, read at most every SHARED_BREAKER_REFRESH_MS, never awaited by a call.
  let elsewhereUntilMs = 0;
  let readAtMs = Number.NEGATIVE_INFINITY;
  let reading = false;
  const refresh = () => {
    if (!shared || reading || libraryClockMs() - readAtMs < SHARED_BREAKER_REFRESH_MS) return;
    reading = true;
    readAtMs = libraryClockMs();
    shared.store.openElsewhereUntil(provider).then(
      (until) => {
        elsewhereUntilMs = until ? until.getTime() : 0;
        reading = false;
      },
      (error: unknown) => {
        reading = false;
        shared.onError?.(error);
      },
    );
  };
  const record = (state: 'open' | 'closed') => {
    if (!shared) return;
    const now = libraryClockMs();
    shared.store
      .record(provider, { state, openUntil: state === 'open' ? new Date(now + options.halfOpenAfterMs) : null, at: new Date(now) })
      .catch((error: unknown) => shared.onError?.(error));
  };
  const openElsewhere = () => {
    refresh();
    return elsewhereUntilMs > libraryClockMs();
  };
  policy.onBreak(() => {
    openedAtMs = libraryClockMs();
    record('open');
  });
  policy.onReset(() => {
    elsewhereUntilMs = 0;
    record('closed');
  });
  const openHere = () => {
    if (policy.state === CircuitState.Isolated) return true;
    if (policy.state !== CircuitState.Open) return false;
    // cockatiel moves to half-open lazily on the next call; answer as it will.
    return libraryClockMs() - openedAtMs < options.halfOpenAfterMs;
  };
  return {
    provider,
    state: () => (policy.state === CircuitState.Closed && openElsewhere() ? 'open' : names[policy.state]),
    isOpen: () => openHere() || openElsewhere(),
    async run<T>(call: () => Promise<T>): Promise<T> {
      if (!openHere() && openElsewhere()) {
        throw new ProviderError('definite', 'unavailable', `${provider} is unavailable (circuit opened by another process)`);
      }
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

/**
 * Wraps every upstream call of a provider in its breaker. With `callTimeoutMs`, a call that has not
 * settled by then fails as an ambiguous `timeout` inside the breaker, so it counts as upstream trouble
 * and a provider that hangs opens the circuit instead of stalling its caller forever. (Adapters
 * bound each HTTP request themselves; this bounds the whole call, whatever the provider does.)
 */
export function withBreaker(provider: Provider, breaker: ProviderBreaker, options: { callTimeoutMs?: number } = {}): Provider {
  const limit = options.callTimeoutMs;
  const run = <T>(label: string, call: () => Promise<T>): Promise<T> =>
    breaker.run(() => (limit === undefined ? call() : bounded(`${provider.name} ${label}`, call, limit)));
  const guarded: Provider = {
    name: provider.name,
    ...(provider.capabilities ? { capabilities: provider.capabilities } : {}),
    ...(provider.anotherCodeTerms ? { anotherCodeTerms: provider.anotherCodeTerms } : {}),
    catalogue: () => run('catalogue', () => provider.catalogue()),
    buy: (request) => run('buy', () => provider.buy(request)),
    lookup: (request) => run('lookup', () => provider.lookup(request)),
    check: (order) => run('check', () => provider.check(order)),
    cancel: (id) => run('cancel', () => provider.cancel(id)),
    balance: () => run('balance', () => provider.balance()),
  };
  if (provider.checkMany) guarded.checkMany = (orders) => run('checkMany', () => provider.checkMany!(orders));
  if (provider.complete) guarded.complete = (id) => run('complete', () => provider.complete!(id));
  if (provider.report) guarded.report = (id) => run('report', () => provider.report!(id));
  if (provider.areaCodes) guarded.areaCodes = () => run('areaCodes', () => provider.areaCodes!());
  if (provider.reportOutcome) guarded.reportOutcome = (id) => run('reportOutcome', () => provider.reportOutcome!(id));
  if (provider.anotherCode) guarded.anotherCode = (order) => run('anotherCode', () => provider.anotherCode!(order));
  if (provider.activeOrders) guarded.activeOrders = () => run('activeOrders', () => provider.activeOrders!());
  // Reading a webhook calls nobody upstream: nothing for the breaker to guard.
  if (provider.webhooks) return { ...guarded, webhooks: provider.webhooks };
  return guarded;
}

/** Settles with the call, or rejects with an ambiguous timeout after `ms` of real time. */
function bounded<T>(label: string, call: () => Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new ProviderError('ambiguous', 'timeout', `${label}: no answer within ${ms} ms`));
    }, ms);
    const settle = (done: () => void) => {
      clearTimeout(timer);
      done();
    };
    let pending: Promise<T>;
    try {
      pending = call();
    } catch (error) {
      settle(() => reject(error));
      return;
    }
    pending.then(
      (value) => settle(() => resolve(value)),
      (error: unknown) => settle(() => reject(error)),
    );
  });
}
