import { and, asc, eq, sql } from 'drizzle-orm';
import type { Executor } from '../db/database.ts';
import { sandboxCountries, sandboxServices } from '../providers/sandbox.ts';
import { services } from '../verifications/schema.ts';

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
    })),
  );
  await ex.insert(services).values(rows).onConflictDoNothing();
}

/** Adds or updates one offer (operators, real providers). */
export async function upsertOffer(ex: Executor, offer: Offer): Promise<void> {
  await ex
    .insert(services)
    .values(offer)
    .onConflictDoUpdate({
      target: [services.provider, services.service, services.country],
      set: { name: offer.name, priceMinor: offer.priceMinor, costMinor: offer.costMinor, enabled: offer.enabled },
    });
}

export async function countOffers(ex: Executor, provider: string): Promise<number> {
  const [row] = await ex.select({ n: sql<number>`count(*)::int` }).from(services).where(eq(services.provider, provider));
  return Number(row?.n ?? 0);
}
