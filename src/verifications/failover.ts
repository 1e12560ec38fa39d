import { and, eq, isNull, sql } from 'drizzle-orm';
import { findOffer } from '../catalogue/catalogue.ts';
import { rows, type Executor } from '../db/database.ts';
import { honours, isPlain, routedOptionSurcharge, surchargeCost, type Refusal } from '../catalogue/number-options.ts';
import { DomainError } from '../errors.ts';
import { PLAIN_CAPABILITIES, ProviderError, isProviderError, type NumberOptions, type ProviderCapabilities, type ProviderOrder } from '../providers/provider.ts';
import { rankRoutes, type RankedRoute, type RouteStats } from '../providers/routing.ts';
import { breakerFor, providerFor } from '../providers/set.ts';
import type { LifecycleDeps, VerificationRow } from './lifecycle.ts';
import { verificationEvents, verifications } from './schema.ts';

/**
 * Several upstreams behind one purchase (docs/routing.md): the ranked candidates chosen before the
 * reservation, and the failover around the upstream call. A purchase moves to the next candidate
 * only after a definite failure (nothing was bought: no numbers, price above the cap, breaker open,
 * a refusal before acceptance), under the same hold, the same verification and the same
 * Idempotency-Key; after an ambiguous one it never does: the order stays pending for recovery at
 * the provider that may have sold it.
 */

export interface PurchasePlan {
  /**
   * The provider the reservation prices the offer with: the best candidate, or the preferred route
   * when none can take a purchase now; null when nothing sells this (service, country).
   */
  provider: string | null;
  /** Our price across several providers' rows (the routed offer); null: the one provider's own row decides. */
  priceMinor: number | null;
  /** The providers to try, best first; empty when every one is unavailable right now. */
  candidates: RankedRoute[];
  /**
   * The customer's price for the options when several providers stand behind the offer: the highest
   * any of them needs (routedOptionSurcharge), so the hold covers failover; null: one provider, whose
   * own surcharge the reservation prices.
   */
  surchargePriceMinor: number | null;
}

/** The providers taking new purchases, in order of preference. */
export function purchasingProviders(deps: LifecycleDeps): string[] {
  return deps.providers ? deps.providers.active().map((m) => m.name) : [deps.provider.name];
}

/** Area codes, carriers and voice a provider honours. */
export function capabilitiesOf(deps: LifecycleDeps, provider: string): ProviderCapabilities {
  return providerFor(deps, provider).capabilities ?? PLAIN_CAPABILITIES;
}

/**
 * The ranked candidates for a purchase, before anything is reserved: the providers taking purchases
 * that honour the options (area codes, carriers, voice; refused with option_not_offered when none
 * does), carry the offer at a margin, and are available now. With one such provider there is
 * nothing to rank and nothing is read: the reservation reads its offer (the single-provider
 * purchase costs no extra statement).
 */
export async function planPurchase(deps: LifecycleDeps, ex: Executor, service: string, country: string, options?: NumberOptions): Promise<PurchasePlan> {
  const purchasing = purchasingProviders(deps);
  const refusals = purchasing.map((name) => honours(capabilitiesOf(deps, name), options, country));
  const providers = purchasing.filter((_, i) => refusals[i]!.ok);
  const refused = refusals.find((r): r is Refusal => !r.ok);
  if (providers.length === 0 && refused) throw new DomainError('option_not_offered', refused.reason, { option: refused.option });
  const available = (name: string) => !deps.controls?.isDisabled(name) && !breakerFor(deps, name).isOpen();
  if (providers.length <= 1) {
    const only = providers[0];
    if (only === undefined) return { provider: null, priceMinor: null, candidates: [], surchargePriceMinor: null };
    // The cap of the first attempt is the reservation's (its offer's cost with the options'); only
    // a later candidate's cost is read from its route.
    const route = { provider: only, costMinor: 0, stock: null, preference: 0, score: 1, successRate: 1 };
    return { provider: only, priceMinor: null, candidates: available(only) ? [route] : [], surchargePriceMinor: null };
  }
  const offer = await findOffer(ex, providers, service, country);
  if (!offer) return { provider: null, priceMinor: null, candidates: [], surchargePriceMinor: null };
  const candidates = offer.routes.map((route) => ({ ...route, preference: providers.indexOf(route.provider) }));
  const open = candidates.filter((c) => available(c.provider));
  // One open route has nothing to rank: no statistics read.
  const stats = open.length > 1 ? await routeStats(ex, deps, service, country, open.map((c) => c.provider)) : new Map<string, RouteStats>();
  const ranked = rankRoutes({
    priceMinor: offer.priceMinor,
    candidates,
    isAvailable: available,
    stats,
    settings: { priorSuccessRate: deps.config.ROUTING_PRIOR_SUCCESS_RATE, priorWeight: deps.config.ROUTING_PRIOR_WEIGHT },
  });
  // Every provider behind the offer counts, available now or not: the price does not move with breakers.
  const surchargePriceMinor = isPlain(options)
    ? null
    : routedOptionSurcharge(offer.priceMinor, offer.routes.map((r) => ({ costMinor: r.costMinor, capabilities: capabilitiesOf(deps, r.provider) })), options).priceMinor;
  return { provider: ranked[0]?.provider ?? offer.routes[0]!.provider, priceMinor: offer.priceMinor, candidates: ranked, surchargePriceMinor };
}

/**
 * Received ÷ finished and the median time to code per provider for one (service, country), over
 * the last ROUTING_WINDOW_MINUTES. Finished means a number was assigned and the verification ended
 * (received, cancelled, expired); purchases that failed bought nothing and are the breaker's and the
 * stock's business.
 */
export async function routeStats(ex: Executor, deps: LifecycleDeps, service: string, country: string, providers: readonly string[]): Promise<Map<string, RouteStats>> {
  const since = new Date(deps.clock.now().getTime() - deps.config.ROUTING_WINDOW_MINUTES * 60_000);
  const found = await rows<{ provider: string; received: number; finished: number; median: number | null }>(
    ex,
    sql`SELECT provider,
               count(*) FILTER (WHERE state = 'received')::int AS received,
               count(*)::int AS finished,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM resolved_at - created_at))
                 FILTER (WHERE state = 'received') AS median
        FROM verifications
        WHERE service = ${service} AND country = ${country} AND created_at >= ${since}
          AND provider IN ${[...providers]} AND state IN ('received', 'cancelled', 'expired')
        GROUP BY provider`,
  );
  return new Map(
    found.map((r) => [r.provider, { received: Number(r.received), finished: Number(r.finished), medianSecondsToCode: r.median === null ? null : Number(r.median) }]),
  );
}

/**
 * The upstream purchase over the ranked candidates. The verification is bound to each candidate
 * before it is asked (so a crash or an unknown outcome leaves it pending at the provider that may
 * have sold it), and each failure that moves on is written in its history. Every attempt ends by
 * the verification's purchase_until (PURCHASE_TIMEOUT_SECONDS): a call still unanswered then is an
 * ambiguous timeout, and no further candidate is tried. Returns the order, or throws the last
 * ProviderError (definite: nothing was bought anywhere; ambiguous: recovery asks that provider).
 */
export async function buyWithFailover(deps: LifecycleDeps, created: VerificationRow, candidates: readonly RankedRoute[]): Promise<ProviderOrder> {
  const until = (created.purchaseUntil ?? new Date(created.createdAt.getTime() + deps.config.PURCHASE_TIMEOUT_SECONDS * 1000)).getTime();
  // Made only when every candidate failed: an Error per purchase (its stack trace) costs CPU on the hot path.
  let last: ProviderError | undefined;
  for (const [index, candidate] of candidates.entries()) {
    const remainingMs = until - deps.clock.now().getTime();
    if (remainingMs <= 0) break;
    // The first attempt's cap is the reservation's; a later candidate's is its own cost with the options'.
    const maxCostMinor = index === 0 ? created.maxCostMinor : candidate.costMinor + surchargeCost(capabilitiesOf(deps, candidate.provider), created.numberOptions ?? undefined);
    if (index > 0 && !(await rebindPurchase(deps, created.id, candidate.provider, maxCostMinor, `${last?.code} at ${candidates[index - 1]!.provider}: trying ${candidate.provider}`))) {
      break;
    }
    try {
      return await withinMs(
        providerFor(deps, candidate.provider).buy({
          service: created.service,
          country: created.country,
          maxCostMinor,
          clientRef: created.id,
          ...(created.numberOptions ? { options: created.numberOptions } : {}),
        }),
        remainingMs,
        candidate.provider,
      );
    } catch (error) {
      if (!isProviderError(error) || error.kind === 'ambiguous') throw error;
      last = error;
    }
  }
  throw last ?? new ProviderError('definite', 'unavailable', 'no provider can take this purchase now');
}

/**
 * Moves a pending purchase that nothing was bought for to the next candidate: its provider and its
 * price cap, with the reason in its history. False when it is no longer a pending purchase without
 * an order (another actor resolved it): then nothing more is tried.
 */
async function rebindPurchase(deps: LifecycleDeps, id: string, provider: string, maxCostMinor: number, reason: string): Promise<boolean> {
  const now = deps.clock.now();
  return deps.database.transaction(async (tx) => {
    const [moved] = await tx
      .update(verifications)
      .set({ provider, maxCostMinor, updatedAt: now })
      .where(and(eq(verifications.id, id), eq(verifications.state, 'pending'), isNull(verifications.providerOrderId)))
      .returning({ id: verifications.id });
    if (!moved) return false;
    await tx.insert(verificationEvents).values({ verificationId: id, fromState: 'pending', toState: 'pending', actor: 'customer', reason, createdAt: now });
    return true;
  });
}

/** The call's answer, or an ambiguous timeout once `ms` of real time have passed (the call may still have bought). */
function withinMs<T>(call: Promise<T>, ms: number, provider: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new ProviderError('ambiguous', 'timeout', `${provider} buy: no answer within the purchase time`)), ms);
    call.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
