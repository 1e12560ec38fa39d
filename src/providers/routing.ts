/**
 * Which upstreams a purchase tries, and in what order (docs/routing.md). Pure: the caller reads the
 * catalogue, the breakers, the operator's controls and the recent outcomes; this decides.
 *
 * A candidate is a provider that carries the (service, country), takes new purchases (configured,
 * not drained, not disabled by an operator), whose breaker is closed, whose cost stays below our
 * price (a positive margin) and that has not said it is out of stock. Candidates are ranked by
 *
 *   score = S × (1 − MARGIN_WEIGHT + MARGIN_WEIGHT × M) × T × K
 *
 *   S  success rate, smoothed towards a prior: (received + prior × w) / (finished + w)
 *   M  margin share: (price − cost) / price, in (0, 1]
 *   T  speed: 1 / (1 + median seconds to code / SPEED_SCALE_SECONDS); a route without one gets the prior median
 *   K  stock: LOW_STOCK_FACTOR when the provider said it has fewer than LOW_STOCK numbers, else 1
 *
 * Equal scores keep the operator's order of preference (PROVIDERS), then the name.
 */

export interface RouteCandidate {
  provider: string;
  /** What this provider charges us, minor units (sent as its price cap). */
  costMinor: number;
  /** Numbers the provider said it has at the last sync; null when it does not say. */
  stock: number | null;
  /** Position in PROVIDERS (0 = most preferred). */
  preference: number;
}

/** Recent outcomes of one provider for this (service, country). */
export interface RouteStats {
  /** Verifications that got a code. */
  received: number;
  /** Verifications that ended with a number assigned: received, cancelled or expired. */
  finished: number;
  /** Median seconds from purchase to code, over the received ones; null when none. */
  medianSecondsToCode: number | null;
}

export interface RoutingSettings {
  /** Success rate assumed for a route with no history (ROUTING_PRIOR_SUCCESS_RATE). */
  priorSuccessRate: number;
  /** How many finished verifications the prior counts as (ROUTING_PRIOR_WEIGHT). */
  priorWeight: number;
}

export interface RoutingInput {
  /** Our price for the offer, minor units. */
  priceMinor: number;
  candidates: readonly RouteCandidate[];
  /** Whether the provider takes a purchase now: active, not disabled, breaker closed. */
  isAvailable(provider: string): boolean;
  stats: ReadonlyMap<string, RouteStats>;
  settings: RoutingSettings;
}

export interface RankedRoute extends RouteCandidate {
  score: number;
  successRate: number;
}

export const MARGIN_WEIGHT = 0.25;
export const SPEED_SCALE_SECONDS = 600;
export const PRIOR_MEDIAN_SECONDS = 60;
export const LOW_STOCK = 5;
export const LOW_STOCK_FACTOR = 0.8;

/** The smoothed success rate of a route. */
export function successRate(stats: RouteStats | undefined, settings: RoutingSettings): number {
  const received = stats?.received ?? 0;
  const finished = stats?.finished ?? 0;
  const weight = settings.priorWeight;
  if (finished + weight === 0) return settings.priorSuccessRate;
  return (received + settings.priorSuccessRate * weight) / (finished + weight);
}

export function routeScore(candidate: RouteCandidate, priceMinor: number, stats: RouteStats | undefined, settings: RoutingSettings): number {
  const margin = (priceMinor - candidate.costMinor) / priceMinor;
  const median = stats?.medianSecondsToCode ?? PRIOR_MEDIAN_SECONDS;
  const speed = 1 / (1 + Math.max(0, median) / SPEED_SCALE_SECONDS);
  const stock = candidate.stock !== null && candidate.stock < LOW_STOCK ? LOW_STOCK_FACTOR : 1;
  return successRate(stats, settings) * (1 - MARGIN_WEIGHT + MARGIN_WEIGHT * margin) * speed * stock;
}

/** Whether a candidate may be tried at all. */
export function isEligible(candidate: RouteCandidate, input: Pick<RoutingInput, 'priceMinor' | 'isAvailable'>): boolean {
  return candidate.costMinor < input.priceMinor && candidate.stock !== 0 && input.isAvailable(candidate.provider);
}

/** The candidates to try, best first. */
export function rankRoutes(input: RoutingInput): RankedRoute[] {
  const seen = new Set<string>();
  const ranked: RankedRoute[] = [];
  for (const candidate of input.candidates) {
    if (seen.has(candidate.provider) || !isEligible(candidate, input)) continue;
    seen.add(candidate.provider);
    const stats = input.stats.get(candidate.provider);
    ranked.push({
      ...candidate,
      score: routeScore(candidate, input.priceMinor, stats, input.settings),
      successRate: successRate(stats, input.settings),
    });
  }
  return ranked.sort(
    (a, b) => b.score - a.score || a.preference - b.preference || (a.provider < b.provider ? -1 : a.provider > b.provider ? 1 : 0),
  );
}
