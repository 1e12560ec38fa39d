/**
 * Catalogue rows for a real provider in the `services` table. Purchases look their offer up by
 * the runtime's provider name, so a test that runs a real adapter needs rows for that provider:
 * `price_minor` is what the customer pays (held, then captured), `cost_minor` the cap sent upstream.
 */
import type { Executor } from '../../src/db/database.ts';
import { services } from '../../src/catalogue/schema.ts';
import type { ProviderName } from '../../src/providers/provider.ts';

export interface TestOffer {
  service: string;
  country?: string;
  name?: string;
  priceMinor: number;
  costMinor: number;
  enabled?: boolean;
}

/**
 * Offers matching the fake upstreams' default price lists (test/support/fake-*.ts), with caps above
 * the fake's cost so a purchase goes through unless a test lowers them.
 */
export const DEFAULT_OFFERS: Record<'textverified' | 'sms-activate', TestOffer[]> = {
  // Fake TextVerified: whatsapp 1.25, telegram 0.75, google 0.50 (US only).
  textverified: [
    { service: 'whatsapp', priceMinor: 200, costMinor: 150 },
    { service: 'telegram', priceMinor: 120, costMinor: 100 },
    { service: 'google', priceMinor: 80, costMinor: 60 },
  ],
  // Fake SMS-Activate: US (187) wa 0.50, tg 0.35, go 0.20 with no stock; GB (16) wa 0.90.
  'sms-activate': [
    { service: 'whatsapp', priceMinor: 80, costMinor: 60 },
    { service: 'telegram', priceMinor: 60, costMinor: 40 },
    { service: 'google', priceMinor: 40, costMinor: 30 },
    { service: 'whatsapp', country: 'GB', priceMinor: 150, costMinor: 100 },
  ],
};

/** Inserts (or updates) catalogue rows for `provider`; defaults to DEFAULT_OFFERS[provider]. */
export async function putProviderCatalogue(ex: Executor, provider: ProviderName, offers?: TestOffer[]): Promise<void> {
  offers ??= (DEFAULT_OFFERS as Record<string, TestOffer[]>)[provider] ?? [];
  for (const offer of offers) {
    const row = {
      provider,
      service: offer.service,
      country: offer.country ?? 'US',
      name: offer.name ?? offer.service,
      priceMinor: offer.priceMinor,
      costMinor: offer.costMinor,
      enabled: offer.enabled ?? true,
    };
    // A fixture, written directly: the service's own writer (src/catalogue) fills it from a price list.
    await ex
      .insert(services)
      .values(row)
      .onConflictDoUpdate({ target: [services.provider, services.service, services.country], set: row });
  }
}
