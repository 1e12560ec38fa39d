import { and, asc, eq, inArray, sql } from 'drizzle-orm';
import type { Database, Executor } from '../db/database.ts';
import type { CatalogueEntry, Provider } from '../providers/provider.ts';
import { sandboxCountries, sandboxServices } from '../providers/sandbox.ts';
import { services } from './schema.ts';

/**
 * The catalogue: what customers can buy from the configured provider and at what price. The
 * customer's price is ours; `cost_minor` is the most we agree to pay upstream (sent as the cap).
 */
export type Offer = typeof services.$inferSelect;

/** One provider's side of an offer: what it costs us there, and its stock when it said. */
export interface OfferRoute {
  provider: string;
  costMinor: number;
  stock: number | null;
}

/**
 * What the customer sees for one (service, country): our price, and behind it every configured
 * provider that can serve it at a positive margin (cost below our price), in order of preference.
 * `provider` and `costMinor` are the preferred route's.
 */
export type RoutedOffer = Offer & { routes: OfferRoute[] };

/**
 * One offer per (service, country) from the providers' rows (pure). Our price is the lowest price an
 * operator set among the rows that keep a positive margin (price above cost); the routes are the
 * listed providers whose cost stays below it. An offer no provider can serve at a positive margin is
 * not sold (undefined).
 */
export function routedOffer(rows: readonly Offer[], providers: readonly string[]): RoutedOffer | undefined {
  const listed = rows.filter((r) => r.enabled && providers.includes(r.provider));
  const sellable = listed.filter((r) => r.priceMinor > r.costMinor);
  if (sellable.length === 0) return undefined;
  const priceMinor = Math.min(...sellable.map((r) => r.priceMinor));
  const routes = listed
    .filter((r) => r.costMinor < priceMinor)
    .sort((a, b) => providers.indexOf(a.provider) - providers.indexOf(b.provider))
    .map((r) => ({ provider: r.provider, costMinor: r.costMinor, stock: r.stock ?? null }));
  const preferred = listed.find((r) => r.provider === routes[0]!.provider)!;
  return { ...preferred, priceMinor, routes };
}

function routedOffers(rows: readonly Offer[], providers: readonly string[]): RoutedOffer[] {
  const groups = new Map<string, Offer[]>();
  for (const row of rows) {
    const key = `${row.country}\u0000${row.service}`;
    const group = groups.get(key);
    if (group) group.push(row);
    else groups.set(key, [row]);
  }
  const offers: RoutedOffer[] = [];
  for (const group of groups.values()) {
    const offer = routedOffer(group, providers);
    if (offer) offers.push(offer);
  }
  return offers;
}

const asList = (providers: string | readonly string[]): readonly string[] => (typeof providers === 'string' ? [providers] : providers);

/** The offer for (service, country) across `providers` (one name, or several in order of preference). */
export async function findOffer(ex: Executor, providers: string | readonly string[], service: string, country: string): Promise<RoutedOffer | undefined> {
  const list = asList(providers);
  if (list.length === 0) return undefined;
  const rows = await ex
    .select()
    .from(services)
    .where(and(inArray(services.provider, [...list]), eq(services.service, service), eq(services.country, country), eq(services.enabled, true)));
  return routedOffer(rows, list);
}

/** Every offer across `providers`, one per (service, country), by country then service. */
export async function listOffers(ex: Executor, providers: string | readonly string[], country?: string): Promise<RoutedOffer[]> {
  const list = asList(providers);
  if (list.length === 0) return [];
  const rows = await ex
    .select()
    .from(services)
    .where(and(inArray(services.provider, [...list]), eq(services.enabled, true), country ? eq(services.country, country) : undefined))
    .orderBy(asc(services.country), asc(services.service));
  return routedOffers(rows, list);
}

/** Seeds the sandbox catalogue; existing rows (an operator's price edits) are left alone. */
export async function seedSandboxCatalogue(ex: Executor): Promise<void> {
  const rows = sandboxCountries.flatMap((country) =>
    sandboxServices.map((s) => ({
      provider: 'sandbox',
      service: s.service,
      country,
      name: s.name,
      priceMinor: s.priceMinor,
      costMinor: Math.max(1, Math.floor(s.priceMinor / 2)),
      enabled: true,
      voice: country === 'US',
    })),
  );
  // An operator's price edits stay; voice follows the sandbox (US numbers take calls).
  await ex.insert(services).values(rows).onConflictDoUpdate({ target: [services.provider, services.service, services.country], set: { voice: sql`excluded.voice` } });
}

/**
 * The customer's price for an upstream cost: cost × (1 + markupPercent / 100), rounded up to a whole
 * minor unit, in integer arithmetic (never below 1). markupPercent is a whole, non-negative number.
 */
export function priceWithMarkup(costMinor: number, markupPercent: number): number {
  if (!Number.isSafeInteger(costMinor) || costMinor <= 0) throw new RangeError(`cost must be a positive whole number of minor units, got ${costMinor}`);
  if (!Number.isSafeInteger(markupPercent) || markupPercent < 0) throw new RangeError(`markupPercent must be a whole number >= 0, got ${markupPercent}`);
  const scaled = BigInt(costMinor) * BigInt(100 + markupPercent);
  const price = (scaled + 99n) / 100n;
  if (price > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`price for cost ${costMinor} is too large`);
  return Number(price);
}

export interface CatalogueSyncResult {
  provider: string;
  /** Offers inserted or updated, as stored. */
  offers: Offer[];
  /** Upstream entries left out (a cost that is not a positive whole number of minor units). */
  skipped: CatalogueEntry[];
}

/**
 * Fills the catalogue of a real provider from its own price list (provider.catalogue()): one row per
 * (service, country) with cost_minor = the upstream cost (sent upstream as the price cap) and
 * price_minor = cost plus the markup, rounded up. New offers are enabled and named after the service;
 * an existing offer keeps its name and enabled flag (an operator's edits) and gets the new price and
 * cost. Offers the upstream no longer lists are left as they are. One transaction for all rows.
 */
export async function syncCatalogue(
  deps: { database: Database; provider: Pick<Provider, 'name' | 'catalogue'> },
  options: { markupPercent: number },
): Promise<CatalogueSyncResult> {
  priceWithMarkup(1, options.markupPercent); // validate before calling the upstream
  const entries = await deps.provider.catalogue();
  const usable = entries.filter((e) => Number.isSafeInteger(e.costMinor) && e.costMinor > 0);
  const skipped = entries.filter((e) => !usable.includes(e));
  // One row per key: the upstream could list a service twice; the dearer cost is the safer cap.
  const byKey = new Map<string, CatalogueEntry>();
  for (const e of usable) {
    const key = `${e.service}\u0000${e.country}`;
    const seen = byKey.get(key);
    if (!seen || e.costMinor > seen.costMinor) byKey.set(key, { ...e, voice: (e.voice ?? false) || (seen?.voice ?? false) });
  }
  const provider = deps.provider.name;
  const offers = await deps.database.transaction(async (tx) => {
    const stored: Offer[] = [];
    for (const e of byKey.values()) {
      const [row] = await tx
        .insert(services)
        .values({
          provider,
          service: e.service,
          country: e.country,
          name: e.service,
          priceMinor: priceWithMarkup(e.costMinor, options.markupPercent),
          costMinor: e.costMinor,
          stock: e.available,
          enabled: true,
          voice: e.voice ?? false,
        })
        .onConflictDoUpdate({
          target: [services.provider, services.service, services.country],
          set: { priceMinor: sql`excluded.price_minor`, costMinor: sql`excluded.cost_minor`, voice: sql`excluded.voice`, stock: sql`excluded.stock` },
        })
        .returning();
      stored.push(row!);
    }
    return stored;
  });
  return { provider, offers, skipped };
}
