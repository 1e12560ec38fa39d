import { and, asc, eq, sql } from 'drizzle-orm';
import type { Database, Executor } from '../db/database.ts';
import type { CatalogueEntry, Provider } from '../providers/provider.ts';
import { sandboxCountries, sandboxServices } from '../providers/sandbox.ts';
import { services } from './schema.ts';

/**
 * The catalogue: what customers can buy from the configured provider and at what price. The
 * customer's price is ours; `cost_minor` is the most we agree to pay upstream (sent as the cap).
 */
export type Offer = typeof services.$inferSelect;

export async function findOffer(ex: Executor, provider: string, service: string, country: string): Promise<Offer | undefined> {
  const [row] = await ex
    .select()
    .from(services)
    .where(and(eq(services.provider, provider), eq(services.service, service), eq(services.country, country), eq(services.enabled, true)));
  return row;
}

export async function listOffers(ex: Executor, provider: string, country?: string): Promise<Offer[]> {
  return ex
    .select()
    .from(services)
    .where(and(eq(services.provider, provider), eq(services.enabled, true), country ? eq(services.country, country) : undefined))
    .orderBy(asc(services.country), asc(services.service));
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
          enabled: true,
          voice: e.voice ?? false,
        })
        .onConflictDoUpdate({
          target: [services.provider, services.service, services.country],
          set: { priceMinor: sql`excluded.price_minor`, costMinor: sql`excluded.cost_minor`, voice: sql`excluded.voice` },
        })
        .returning();
      stored.push(row!);
    }
    return stored;
  });
  return { provider, offers, skipped };
}
