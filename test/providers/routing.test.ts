import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { routedOffer } from '../../src/catalogue/catalogue.ts';
import { isEligible, rankRoutes, routeScore, type RouteCandidate, type RouteStats, type RoutingInput } from '../../src/providers/routing.ts';
import { canBuild, configuredProviders, kindOf, upstreamSettings } from '../../src/providers/settings.ts';

/**
 * Routing between several upstreams (docs/routing.md) as a pure function, and the configuration
 * that names them. Property tests: whatever the candidates, stats and availability, the ranking
 * leaves out exactly the ineligible ones, is ordered by score, does not depend on the order the
 * candidates came in, and rewards success, speed and a lower cost.
 */

const settings = { priorSuccessRate: 0.7, priorWeight: 10 };
const NAMES = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta'];

const statsArb: fc.Arbitrary<RouteStats> = fc
  .record({ finished: fc.integer({ min: 0, max: 500 }), share: fc.double({ min: 0, max: 1, noNaN: true }), median: fc.option(fc.integer({ min: 1, max: 1200 })) })
  .map(({ finished, share, median }) => ({ finished, received: Math.floor(finished * share), medianSecondsToCode: median }));

const inputArb = fc
  .record({
    priceMinor: fc.integer({ min: 2, max: 10_000 }),
    picked: fc.shuffledSubarray(NAMES, { minLength: 0, maxLength: NAMES.length }),
    costs: fc.array(fc.integer({ min: 1, max: 12_000 }), { minLength: NAMES.length, maxLength: NAMES.length }),
    stocks: fc.array(fc.option(fc.integer({ min: 0, max: 50 })), { minLength: NAMES.length, maxLength: NAMES.length }),
    unavailable: fc.subarray(NAMES),
    stats: fc.dictionary(fc.constantFrom(...NAMES), statsArb),
  })
  .map(({ priceMinor, picked, costs, stocks, unavailable, stats }): RoutingInput => ({
    priceMinor,
    candidates: picked.map((provider, i) => ({ provider, costMinor: costs[i]!, stock: stocks[i]!, preference: NAMES.indexOf(provider) })),
    isAvailable: (name) => !unavailable.includes(name),
    stats: new Map(Object.entries(stats)),
    settings,
  }));

describe('routing: ranking the candidates of a purchase', () => {
  test('only eligible candidates, each once: carried, available, cost below our price, not out of stock', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const ranked = rankRoutes(input);
        const expected = input.candidates.filter((c) => c.costMinor < input.priceMinor && c.stock !== 0 && input.isAvailable(c.provider));
        assert.deepEqual(new Set(ranked.map((r) => r.provider)), new Set(expected.map((c) => c.provider)));
        assert.equal(ranked.length, expected.length);
        for (const r of ranked) assert.ok(isEligible(r, input));
      }),
    );
  });

  test('ordered by score, ties by the order of preference', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const ranked = rankRoutes(input);
        for (let i = 1; i < ranked.length; i++) {
          const [a, b] = [ranked[i - 1]!, ranked[i]!];
          assert.ok(a.score > b.score || (a.score === b.score && a.preference <= b.preference), `${a.provider} before ${b.provider}`);
        }
      }),
    );
  });

  test('the order the candidates arrive in changes nothing', () => {
    fc.assert(
      fc.property(inputArb, fc.integer(), (input, seed) => {
        const shuffled = [...input.candidates].sort((a, b) => ((a.preference * 7919 + seed) % 13) - ((b.preference * 7919 + seed) % 13));
        assert.deepEqual(rankRoutes({ ...input, candidates: shuffled }), rankRoutes(input));
      }),
    );
  });

  test('with no history and equal cost, the operator’s order of preference decides', () => {
    fc.assert(
      fc.property(fc.shuffledSubarray(NAMES, { minLength: 1 }), fc.integer({ min: 1, max: 99 }), (picked, cost) => {
        const ranked = rankRoutes({
          priceMinor: 100,
          candidates: picked.map((provider) => ({ provider, costMinor: cost, stock: null, preference: NAMES.indexOf(provider) })),
          isAvailable: () => true,
          stats: new Map(),
          settings,
        });
        assert.deepEqual(
          ranked.map((r) => r.provider),
          [...picked].sort((a, b) => NAMES.indexOf(a) - NAMES.indexOf(b)),
        );
      }),
    );
  });

  test('more codes received, a faster code or a lower cost never lowers a route’s score', () => {
    const candidate = fc.record({ costMinor: fc.integer({ min: 1, max: 98 }), stock: fc.option(fc.integer({ min: 1, max: 50 })) });
    fc.assert(
      fc.property(candidate, statsArb, fc.integer({ min: 1, max: 50 }), (c, stats, more) => {
        const route: RouteCandidate = { provider: 'alpha', preference: 0, ...c };
        const base = routeScore(route, 100, stats, settings);
        // One more success among the same number of finished ones.
        const better = { ...stats, finished: stats.finished + more, received: stats.received + more };
        assert.ok(routeScore(route, 100, better, settings) >= base - 1e-12, 'more received');
        if (stats.medianSecondsToCode !== null) {
          const faster = { ...stats, medianSecondsToCode: Math.max(0, stats.medianSecondsToCode - more) };
          assert.ok(routeScore(route, 100, faster, settings) >= base, 'faster');
        }
        const cheaper = { ...route, costMinor: Math.max(1, route.costMinor - more) };
        assert.ok(routeScore(cheaper, 100, stats, settings) >= base, 'cheaper');
      }),
    );
  });

  test('a route that delivers beats one that does not, once both have a record', () => {
    const ranked = rankRoutes({
      priceMinor: 100,
      candidates: [
        { provider: 'alpha', costMinor: 40, stock: null, preference: 0 },
        { provider: 'beta', costMinor: 60, stock: null, preference: 1 },
      ],
      isAvailable: () => true,
      stats: new Map([
        ['alpha', { received: 10, finished: 100, medianSecondsToCode: 30 }],
        ['beta', { received: 90, finished: 100, medianSecondsToCode: 30 }],
      ]),
      settings,
    });
    assert.deepEqual(ranked.map((r) => r.provider), ['beta', 'alpha']);
  });
});

describe('catalogue: one offer per service and country', () => {
  const row = (provider: string, priceMinor: number, costMinor: number, enabled = true) => ({
    provider,
    service: 'whatsapp',
    country: 'US',
    name: 'WhatsApp',
    priceMinor,
    costMinor,
    enabled,
    stock: null,
    voice: false,
  });

  test('our price is the lowest price that keeps a margin; routes are the providers whose cost stays below it', () => {
    const offer = routedOffer([row('beta', 120, 70), row('alpha', 150, 100), row('gamma', 90, 95), row('delta', 200, 50, false)], ['alpha', 'beta', 'gamma', 'delta']);
    assert.equal(offer?.priceMinor, 120);
    assert.deepEqual(offer?.routes.map((r) => [r.provider, r.costMinor]), [
      ['alpha', 100],
      ['beta', 70],
      ['gamma', 95],
    ]);
  });

  test('no provider with a positive margin: not sold', () => {
    assert.equal(routedOffer([row('alpha', 100, 100), row('beta', 80, 90)], ['alpha', 'beta']), undefined);
  });

  test('a provider not configured is not behind any offer', () => {
    assert.equal(routedOffer([row('alpha', 100, 50)], ['beta']), undefined);
  });

  test('property: every route keeps a positive margin at our price, and our price is one an operator set', () => {
    const rowArb = fc.record({ provider: fc.constantFrom(...NAMES), price: fc.integer({ min: 1, max: 500 }), cost: fc.integer({ min: 1, max: 500 }), enabled: fc.boolean() });
    fc.assert(
      fc.property(fc.uniqueArray(rowArb, { selector: (r) => r.provider }), fc.subarray(NAMES), (rows, listed) => {
        const offer = routedOffer(
          rows.map((r) => row(r.provider, r.price, r.cost, r.enabled)),
          listed,
        );
        const sellable = rows.filter((r) => r.enabled && listed.includes(r.provider) && r.price > r.cost);
        if (sellable.length === 0) return assert.equal(offer, undefined);
        assert.ok(offer);
        assert.equal(offer.priceMinor, Math.min(...sellable.map((r) => r.price)));
        assert.ok(offer.routes.length >= 1);
        for (const route of offer.routes) {
          assert.ok(route.costMinor < offer.priceMinor);
          assert.ok(listed.includes(route.provider));
        }
      }),
    );
  });
});

describe('configuration: several upstreams', () => {
  test('PROVIDER alone is a list of one; PROVIDERS lists several in order, without repeats', () => {
    assert.deepEqual(configuredProviders(loadConfig({})), ['sandbox']);
    assert.deepEqual(configuredProviders(loadConfig({ PROVIDER: 'textverified' })), ['textverified']);
    assert.deepEqual(configuredProviders(loadConfig({ PROVIDERS: 'daisysms, herosms,sandbox,daisysms' })), ['daisysms', 'herosms', 'sandbox']);
    assert.throws(() => loadConfig({ PROVIDERS: 'Daisy SMS' }), ConfigError);
  });

  test('an SMS-Activate-protocol seller configured twice under its own names', () => {
    const config = loadConfig({
      PROVIDERS: 'daisysms,myseller',
      PROVIDER_DAISYSMS_BASE_URL: 'https://daisysms.com/stubs/handler_api.php',
      PROVIDER_DAISYSMS_API_KEY: 'k1',
      PROVIDER_MYSELLER_PROTOCOL: 'sms-activate',
      PROVIDER_MYSELLER_BASE_URL: 'http://127.0.0.1:9/stubs/handler_api.php',
      PROVIDER_MYSELLER_API_KEY: 'k2',
      PROVIDER_MYSELLER_TIMEOUT_MS: '2500',
      PROVIDER_MYSELLER_CURRENCY: 'USD',
      PROVIDER_MYSELLER_COUNTRY_CODES: 'US=187,GB=16',
    });
    const daisy = upstreamSettings(config, 'daisysms');
    assert.equal(daisy.kind, 'sms-activate');
    assert.equal(daisy.seller?.name, 'daisysms');
    assert.equal(daisy.apiKey, 'k1');
    const mine = upstreamSettings(config, 'myseller');
    assert.deepEqual(
      { kind: mine.kind, seller: mine.seller?.name, apiKey: mine.apiKey, timeoutMs: mine.timeoutMs, currency: mine.sellerCurrency, countries: mine.countryCodes },
      { kind: 'sms-activate', seller: 'sms-activate', apiKey: 'k2', timeoutMs: 2500, currency: 'USD', countries: { US: '187', GB: '16' } },
    );
  });

  test('the single-provider variables keep working for the built-in names', () => {
    const config = loadConfig({ PROVIDER: 'sms-activate', SMS_ACTIVATE_API_KEY: 'legacy' });
    assert.equal(upstreamSettings(config, 'sms-activate').apiKey, 'legacy');
    assert.equal(upstreamSettings(config, 'sms-activate').baseUrl, 'https://api.sms-activate.ae/stubs/handler_api.php');
    const tv = loadConfig({ PROVIDER: 'textverified', TEXTVERIFIED_API_USERNAME: 'a@b.c', TEXTVERIFIED_API_KEY: 'x' });
    assert.equal(upstreamSettings(tv, 'textverified').apiUsername, 'a@b.c');
  });

  test('incomplete configuration names the variable to set', () => {
    const missing = (env: Record<string, string>, name: string, variable: string) =>
      assert.throws(() => upstreamSettings(loadConfig(env), name), (error: unknown) => error instanceof ConfigError && error.message.includes(variable));
    missing({ PROVIDERS: 'herosms' }, 'herosms', 'PROVIDER_HEROSMS_BASE_URL');
    missing({ PROVIDERS: 'herosms', PROVIDER_HEROSMS_BASE_URL: 'https://hero-sms.com/stubs/handler_api.php' }, 'herosms', 'PROVIDER_HEROSMS_API_KEY');
    missing({ PROVIDERS: 'other' }, 'other', 'PROVIDER_OTHER_PROTOCOL');
    missing({ PROVIDERS: 'other', PROVIDER_OTHER_PROTOCOL: 'smpp' }, 'other', 'PROVIDER_OTHER_PROTOCOL');
    missing({ PROVIDER: 'textverified' }, 'textverified', 'PROVIDER_TEXTVERIFIED_API_USERNAME');
    missing({ PROVIDERS: 'my-seller', PROVIDER_MY_SELLER_PROTOCOL: 'sms-activate', PROVIDER_MY_SELLER_BASE_URL: 'ftp://x', PROVIDER_MY_SELLER_API_KEY: 'k' }, 'my-seller', 'PROVIDER_MY_SELLER_BASE_URL');
    missing(
      { PROVIDERS: 'daisysms', PROVIDER_DAISYSMS_BASE_URL: 'https://daisysms.com/stubs/handler_api.php', PROVIDER_DAISYSMS_API_KEY: 'k', PROVIDER_DAISYSMS_COUNTRY_CODES: 'US:187' },
      'daisysms',
      'PROVIDER_DAISYSMS_COUNTRY_CODES',
    );
    assert.equal(kindOf(loadConfig({}), 'sandbox'), 'sandbox');
    assert.equal(canBuild(loadConfig({}), 'herosms'), false);
  });
});
