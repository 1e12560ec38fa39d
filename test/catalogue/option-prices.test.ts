import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  listedOptionSurcharges,
  optionSurcharge,
  routedOptionSurcharge,
  surchargeCost,
  type SurchargeRoute,
} from '../../src/catalogue/number-options.ts';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { PLAIN_CAPABILITIES, type NumberOptions, type ProviderCapabilities } from '../../src/providers/provider.ts';
import { upstreamSettings } from '../../src/providers/settings.ts';

/**
 * Surcharges per provider (docs/number-options.md, "Price"): the customer's price for the options on
 * an offer several providers stand behind is the highest any of them needs, each provider's own
 * surcharge sold with the offer's margin at that provider. Pure decisions, and the settings that
 * feed them.
 */
const caps = (surcharge: Partial<ProviderCapabilities['surcharge']>, more: Partial<ProviderCapabilities> = {}): ProviderCapabilities => ({
  ...PLAIN_CAPABILITIES,
  areaCodes: true,
  carriers: true,
  voice: true,
  maxChoices: 10,
  areaCodeCountries: ['US'],
  surcharge: { areaCodeMinor: 0, carrierMinor: 0, voiceMinor: 0, ...surcharge },
  ...more,
});

const optionsArb: fc.Arbitrary<NumberOptions> = fc.record(
  {
    areaCodes: fc.constant(['212']),
    carriers: fc.constant(['tmo']),
    capability: fc.constantFrom('sms' as const, 'voice' as const),
  },
  { requiredKeys: [] },
);

describe('routedOptionSurcharge', () => {
  test('the highest of each provider\'s surcharge sold with the margin there', () => {
    const north = { costMinor: 50, capabilities: caps({ carrierMinor: 20 }) };
    const south = { costMinor: 55, capabilities: caps({ carrierMinor: 30 }) };
    // ⌈20 × 90 ÷ 50⌉ = 36, ⌈30 × 90 ÷ 55⌉ = 50.
    assert.deepEqual(routedOptionSurcharge(90, [north, south], { carriers: ['tmo'] }), { costMinor: 30, priceMinor: 50 });
    assert.deepEqual(routedOptionSurcharge(90, [north], { carriers: ['tmo'] }), { costMinor: 20, priceMinor: 36 });
    // A cheaper surcharge at a provider with a thin margin can still be the higher price.
    const thin = { costMinor: 85, capabilities: caps({ carrierMinor: 25 }) };
    assert.deepEqual(routedOptionSurcharge(90, [south, thin], { carriers: ['tmo'] }), { costMinor: 30, priceMinor: 50 });
    assert.deepEqual(routedOptionSurcharge(90, [north, south], {}), { costMinor: 0, priceMinor: 0 });
    assert.deepEqual(routedOptionSurcharge(90, [], { carriers: ['tmo'] }), { costMinor: 0, priceMinor: 0 });
  });

  test('with one provider it is exactly that provider\'s optionSurcharge (what the reservation computes)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 5000 }), fc.integer({ min: 1, max: 4999 }), fc.nat(500), fc.nat(500), fc.nat(500), optionsArb, (price, cost, a, c, v, options) => {
        fc.pre(cost < price);
        const capabilities = caps({ areaCodeMinor: a, carrierMinor: c, voiceMinor: v });
        assert.deepEqual(routedOptionSurcharge(price, [{ costMinor: cost, capabilities }], options), optionSurcharge({ priceMinor: price, costMinor: cost }, capabilities, options));
      }),
    );
  });

  test('whichever provider behind the offer sells, the price covers its cost with the options, at no less than the offer\'s margin there', () => {
    const route: fc.Arbitrary<{ costMinor: number; surcharge: ProviderCapabilities['surcharge'] }> = fc.record({
      costMinor: fc.integer({ min: 1, max: 2000 }),
      surcharge: fc.record({ areaCodeMinor: fc.nat(500), carrierMinor: fc.nat(500), voiceMinor: fc.nat(500) }),
    });
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 3000 }), fc.array(route, { minLength: 1, maxLength: 5 }), optionsArb, (price, raw, options) => {
        // Routes are the providers whose cost stays below our price (routedOffer).
        const routes: SurchargeRoute[] = raw.filter((r) => r.costMinor < price).map((r) => ({ costMinor: r.costMinor, capabilities: caps(r.surcharge) }));
        fc.pre(routes.length > 0);
        const { priceMinor: surcharge, costMinor } = routedOptionSurcharge(price, routes, options);
        for (const r of routes) {
          const cost = r.costMinor + surchargeCost(r.capabilities, options);
          const paid = price + surcharge;
          assert.ok(paid > cost, `paid ${paid} covers ${cost}`);
          // paid ÷ cost ≥ price ÷ r.costMinor, in integers.
          assert.ok(BigInt(paid) * BigInt(r.costMinor) >= BigInt(price) * BigInt(cost), 'margin not below the offer\'s at that provider');
          assert.ok(costMinor >= surchargeCost(r.capabilities, options));
        }
      }),
    );
  });
});

describe('listedOptionSurcharges', () => {
  test('each option alone, over the providers that can take it; null when none can', () => {
    const north = { costMinor: 50, capabilities: caps({ areaCodeMinor: 10, carrierMinor: 20 }, { voice: false, areaCodes: false }) };
    const south = { costMinor: 55, capabilities: caps({ areaCodeMinor: 10, carrierMinor: 30 }, { voice: false }) };
    assert.deepEqual(listedOptionSurcharges(90, [north, south], 'US'), { area_code: 17, carrier: 50, voice: null });
    assert.deepEqual(listedOptionSurcharges(90, [north, south], 'GB'), { area_code: null, carrier: 50, voice: null });
    assert.deepEqual(listedOptionSurcharges(90, [north], 'US'), { area_code: null, carrier: 36, voice: null });
    // Each listed price is what a purchase of that option alone pays.
    assert.equal(listedOptionSurcharges(90, [north, south], 'US').carrier, routedOptionSurcharge(90, [north, south], { carriers: ['vz'] }).priceMinor);
  });
});

describe('PROVIDER_<NAME>_*_SURCHARGE_MINOR', () => {
  const seller = (name: string) => ({ [`PROVIDER_${name}_PROTOCOL`]: 'sms-activate', [`PROVIDER_${name}_BASE_URL`]: 'https://seller.example/stubs/handler_api.php', [`PROVIDER_${name}_API_KEY`]: 'k' });

  test('each provider its own, else the global variables; the sandbox its own 10, 10, 20', () => {
    const config = loadConfig({
      PROVIDERS: 'north,south,sandbox',
      ...seller('NORTH'),
      ...seller('SOUTH'),
      AREA_CODE_SURCHARGE_MINOR: '5',
      CARRIER_SURCHARGE_MINOR: '20',
      PROVIDER_SOUTH_CARRIER_SURCHARGE_MINOR: '30',
      PROVIDER_SOUTH_VOICE_SURCHARGE_MINOR: '0',
    });
    assert.deepEqual(upstreamSettings(config, 'north').surcharges, { areaCodeMinor: 5, carrierMinor: 20, voiceMinor: 0 });
    assert.deepEqual(upstreamSettings(config, 'south').surcharges, { areaCodeMinor: 5, carrierMinor: 30, voiceMinor: 0 });
    assert.deepEqual(upstreamSettings(config, 'sandbox').surcharges, { areaCodeMinor: 10, carrierMinor: 10, voiceMinor: 20 });
    const sandbox = loadConfig({ PROVIDER_SANDBOX_CARRIER_SURCHARGE_MINOR: '40' });
    assert.deepEqual(upstreamSettings(sandbox, 'sandbox').surcharges, { areaCodeMinor: 10, carrierMinor: 40, voiceMinor: 20 });
    const tv = loadConfig({ PROVIDER: 'textverified', TEXTVERIFIED_API_USERNAME: 'a@b.c', TEXTVERIFIED_API_KEY: 'x', PROVIDER_TEXTVERIFIED_VOICE_SURCHARGE_MINOR: '25' });
    assert.deepEqual(upstreamSettings(tv, 'textverified').surcharges, { areaCodeMinor: 0, carrierMinor: 0, voiceMinor: 25 });
  });

  test('a value that is not a whole number of minor units stops the start, naming the variable', () => {
    for (const value of ['-1', '2.5', 'ten', '1000001']) {
      const config = loadConfig({ PROVIDERS: 'north', ...seller('NORTH'), PROVIDER_NORTH_AREA_CODE_SURCHARGE_MINOR: value });
      assert.throws(() => upstreamSettings(config, 'north'), (e: unknown) => e instanceof ConfigError && e.message.includes('PROVIDER_NORTH_AREA_CODE_SURCHARGE_MINOR'), value);
    }
  });
});
