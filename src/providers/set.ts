import { withBreaker, type ProviderBreaker } from './breaker.ts';
import type { Provider, ProviderKind, ProviderName } from './provider.ts';

/**
 * The upstreams of a running installation, each behind its own breaker. `active` ones take new
 * purchases, in order of preference; a `drain` one is a provider no longer in PROVIDERS that still
 * has orders: it takes no new purchase, and its orders are polled, cancelled, recovered and settled
 * there as before. A drained provider is built on first need from its still-present credentials.
 */
export type ProviderMode = 'active' | 'drain';

export interface ProviderMember {
  name: ProviderName;
  kind: ProviderKind;
  mode: ProviderMode;
  /** The adapter itself, without the breaker: for reads that must not trip it (the balance metric). */
  upstream: Provider;
  breaker: ProviderBreaker;
}

/** Builds a provider that is not in the list (drain), or answers undefined when it cannot be built. */
export type DrainBuilder = (name: ProviderName) => Omit<ProviderMember, 'mode'> | undefined;

/** An order's provider is configured nowhere (not listed, no credentials): nothing can reach it. */
export class ProviderNotConfiguredError extends Error {
  constructor(readonly provider: string) {
    super(`provider "${provider}" is not configured: its orders cannot reach it (configure it again, or settle them by hand)`);
    this.name = 'ProviderNotConfiguredError';
  }
}

export function isProviderNotConfigured(error: unknown): error is ProviderNotConfiguredError {
  return error instanceof ProviderNotConfiguredError;
}

export class ProviderSet {
  private readonly wrapped = new Map<ProviderName, Provider>();

  constructor(
    private readonly members: Map<ProviderName, ProviderMember>,
    private readonly drain?: DrainBuilder,
    /** Every call bounded by this (the engine's view: a provider that never answers cannot stall it). */
    private readonly callTimeoutMs?: number,
  ) {}

  static of(members: readonly Omit<ProviderMember, 'mode'>[], drain?: DrainBuilder): ProviderSet {
    return new ProviderSet(new Map(members.map((m) => [m.name, { ...m, mode: 'active' as const }])), drain);
  }

  /** The same providers and breakers, every call bounded by `ms`. */
  withCallTimeout(ms: number): ProviderSet {
    return new ProviderSet(this.members, this.drain, ms);
  }

  /** A configured or drained provider by name, building a drained one on first need. */
  member(name: ProviderName): ProviderMember | undefined {
    const known = this.members.get(name);
    if (known) return known;
    const built = this.drain?.(name);
    if (!built) return undefined;
    const member: ProviderMember = { ...built, name, mode: 'drain' };
    this.members.set(name, member);
    return member;
  }

  /** The provider behind its breaker; throws ProviderNotConfiguredError when it is configured nowhere. */
  get(name: ProviderName): Provider {
    const cached = this.wrapped.get(name);
    if (cached) return cached;
    const member = this.member(name);
    if (!member) throw new ProviderNotConfiguredError(name);
    const provider = withBreaker(member.upstream, member.breaker, this.callTimeoutMs === undefined ? {} : { callTimeoutMs: this.callTimeoutMs });
    this.wrapped.set(name, provider);
    return provider;
  }

  breaker(name: ProviderName): ProviderBreaker {
    const member = this.member(name);
    if (!member) throw new ProviderNotConfiguredError(name);
    return member.breaker;
  }

  /** Whether a name is known here (listed, or drained and built); never builds one. */
  has(name: ProviderName): boolean {
    return this.members.has(name);
  }

  /** The providers taking new purchases, in order of preference. */
  active(): ProviderMember[] {
    return [...this.members.values()].filter((m) => m.mode === 'active');
  }

  /** Every provider known so far: the active ones first, then the drained ones built. */
  all(): ProviderMember[] {
    return [...this.active(), ...[...this.members.values()].filter((m) => m.mode === 'drain')];
  }
}

/** What the lifecycle hands in: the set, or (test doubles) one provider and its breaker. */
export interface ProviderDeps {
  provider: Provider;
  breaker: ProviderBreaker;
  providers?: ProviderSet;
}

/**
 * The upstream an order belongs to. Every call about an existing order (poll, cancel, finish,
 * report, another code) goes to the provider recorded on its verification, never to "the current
 * one". Throws ProviderNotConfiguredError when that provider is configured nowhere: the caller
 * leaves the order alone (and diagnose reports it), never settles it as if the upstream answered.
 */
export function providerFor(deps: ProviderDeps, providerName: string): Provider {
  return deps.providers ? deps.providers.get(providerName) : deps.provider;
}

/** The breaker of the provider an order belongs to. */
export function breakerFor(deps: ProviderDeps, providerName: string): ProviderBreaker {
  return deps.providers ? deps.providers.breaker(providerName) : deps.breaker;
}
