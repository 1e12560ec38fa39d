/**
 * What the SMS-Activate-protocol sellers we know do differently from the protocol as documented,
 * as adapter options. A seller is recognised by the host of its handler URL; any other host gets
 * the protocol's defaults. Facts and their sources: docs/providers.md.
 */
import type { SmsActivateOptions } from './adapter.ts';

export type SellerName = 'sms-activate' | 'herosms' | 'daisysms';

export interface SellerProfile {
  name: SellerName;
  options: Partial<SmsActivateOptions>;
}

export const SELLER_PROFILES: Readonly<Record<SellerName, SellerProfile>> = {
  // The protocol as SMS-Activate documented it; also what unknown clones get.
  'sms-activate': { name: 'sms-activate', options: {} },
  herosms: {
    name: 'herosms',
    options: {
      // getActiveActivations takes start/limit, limit at most 100; the list is under `data`.
      activeListPageSize: 100,
    },
  },
  daisysms: {
    name: 'daisysms',
    options: {
      // US numbers only; clients are told not to send `country`.
      sendCountry: false,
      countryCodes: { US: '187' },
      // Each service's lifetime (5 to 15 minutes) is in getPricesVerification; until it has been
      // read, the shortest is assumed: our deadline must never outlive the seller's.
      pricesAction: 'getPricesVerification',
      activationLifetimeSeconds: 300,
      // Balances and prices are in dollars; its timestamps are UTC.
      sellerCurrency: 'USD',
      sellerUtcOffsetMinutes: 0,
      // Area codes and carriers as `areas` / `carriers`, comma-separated.
      numberChoice: 'areas-carriers',
      carrierNames: ['att', 'tmo', 'vz'],
      // Another code is an extra activation of the same number, charged (docs/number-care.md).
      anotherCodeAction: 'getExtraActivation',
    },
  },
};

export function sellerProfileFor(baseUrl: string): SellerProfile {
  const host = new URL(baseUrl).hostname.toLowerCase();
  if (/(^|\.)daisysms\.(com|io)$/.test(host)) return SELLER_PROFILES.daisysms;
  if (/(^|\.)hero-sms\.com$/.test(host)) return SELLER_PROFILES.herosms;
  return SELLER_PROFILES['sms-activate'];
}
