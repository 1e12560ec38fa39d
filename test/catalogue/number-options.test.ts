import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { canonicalOptions, honours, isPlain, MAX_CHOICES, optionSurcharge } from '../../src/catalogue/number-options.ts';
import { PLAIN_CAPABILITIES, type NumberOptions, type ProviderCapabilities } from '../../src/providers/provider.ts';
import { assignedNumberMismatch, nanpAreaCode } from '../../src/verifications/assigned-number.ts';

const areaCode = fc.stringMatching(/^[2-9]\d{2}$/);
const carrier = fc.constantFrom('att', 'tmo', 'vz', 'uscc', 'other');
const options: fc.Arbitrary<NumberOptions> = fc.record(
  {
    areaCodes: fc.array(areaCode, { maxLength: 12 }),
    carriers: fc.array(carrier, { maxLength: 12 }),
    capability: fc.constantFrom('sms' as const, 'voice' as const),
  },
  { requiredKeys: [] },
);
const capabilities: fc.Arbitrary<ProviderCapabilities> = fc.record({
  areaCodes: fc.boolean(),
  carriers: fc.boolean(),
  voice: fc.boolean(),
  maxChoices: fc.integer({ min: 0, max: 12 }),
  carrierNames: fc.option(fc.uniqueArray(carrier, { minLength: 1 }), { nil: null }),
  areaCodeCountries: fc.subarray(['US', 'CA']),
  reportsCarrier: fc.boolean(),
  surcharge: fc.record({ areaCodeMinor: fc.nat(500), carrierMinor: fc.nat(500), voiceMinor: fc.nat(500) }),
});
const country = fc.constantFrom('US', 'CA', 'GB');

describe('honours(capabilities, options)', () => {
  test('a plain request is honoured by every upstream', () => {
    fc.assert(
      fc.property(capabilities, country, (caps, c) => {
        assert.deepEqual(honours(caps, {}, c), { ok: true });
        assert.deepEqual(honours(caps, { capability: 'sms', areaCodes: [], carriers: [] }, c), { ok: true });
      }),
    );
  });

  test('honoured means every choice is within what the upstream says it can do', () => {
    fc.assert(
      fc.property(capabilities, options, country, (caps, o, c) => {
        const answer = honours(caps, o, c);
        const k = canonicalOptions(o);
        if (answer.ok) {
          if (k.areaCodes) {
            assert.ok(caps.areaCodes && caps.areaCodeCountries.includes(c));
            assert.ok(k.areaCodes.length <= Math.min(MAX_CHOICES, caps.maxChoices));
          }
          if (k.carriers) {
            assert.ok(caps.carriers && k.carriers.length <= Math.min(MAX_CHOICES, caps.maxChoices));
            if (caps.carrierNames) for (const name of k.carriers) assert.ok(caps.carrierNames.includes(name));
          }
          if (k.capability === 'voice') assert.ok(caps.voice);
        } else {
          assert.ok(answer.reason.length > 0);
        }
      }),
    );
  });

  test('an upstream that can do everything honours every well-formed request within the limits', () => {
    const all: ProviderCapabilities = { ...PLAIN_CAPABILITIES, areaCodes: true, carriers: true, voice: true, maxChoices: MAX_CHOICES, areaCodeCountries: ['US'] };
    fc.assert(
      fc.property(options, (o) => {
        const k = canonicalOptions(o);
        const within = (k.areaCodes?.length ?? 0) <= MAX_CHOICES && (k.carriers?.length ?? 0) <= MAX_CHOICES;
        assert.equal(honours(all, o, 'US').ok, within);
      }),
    );
  });

  test('the answer does not depend on order, duplicates or case', () => {
    fc.assert(
      fc.property(capabilities, options, country, (caps, o, c) => {
        const shuffled: NumberOptions = {
          ...o,
          areaCodes: o.areaCodes ? [...o.areaCodes].reverse().concat(o.areaCodes.slice(0, 1)) : undefined,
          carriers: o.carriers?.map((x) => x.toUpperCase()).reverse(),
        };
        assert.deepEqual(honours(caps, shuffled, c).ok, honours(caps, o, c).ok);
        assert.deepEqual(canonicalOptions(shuffled), canonicalOptions(o));
      }),
    );
  });

  test('an upstream without any option honours only plain requests', () => {
    fc.assert(fc.property(options, country, (o, c) => assert.equal(honours(PLAIN_CAPABILITIES, o, c).ok, isPlain(o))));
  });

  test('malformed choices are refused whatever the upstream', () => {
    const all: ProviderCapabilities = { ...PLAIN_CAPABILITIES, areaCodes: true, carriers: true, voice: true, maxChoices: 10, areaCodeCountries: ['US'] };
    assert.equal(honours(all, { areaCodes: ['123'] }, 'US').ok, false);
    assert.equal(honours(all, { areaCodes: ['41'] }, 'US').ok, false);
    assert.equal(honours(all, { carriers: ['a b'] }, 'US').ok, false);
    assert.equal(honours(all, { areaCodes: ['415'] }, 'GB').ok, false);
  });
});

describe('optionSurcharge', () => {
  test('the surcharge carries the offer margin, rounded up, and is zero for a plain request', () => {
    const caps: ProviderCapabilities = { ...PLAIN_CAPABILITIES, surcharge: { areaCodeMinor: 10, carrierMinor: 7, voiceMinor: 20 } };
    assert.deepEqual(optionSurcharge({ priceMinor: 120, costMinor: 60 }, caps, {}), { costMinor: 0, priceMinor: 0 });
    assert.deepEqual(optionSurcharge({ priceMinor: 120, costMinor: 60 }, caps, { areaCodes: ['212'] }), { costMinor: 10, priceMinor: 20 });
    assert.deepEqual(optionSurcharge({ priceMinor: 130, costMinor: 100 }, caps, { carriers: ['vz'] }), { costMinor: 7, priceMinor: 10 });
    assert.deepEqual(optionSurcharge({ priceMinor: 100, costMinor: 100 }, caps, { capability: 'voice', areaCodes: ['212'] }), { costMinor: 30, priceMinor: 30 });
  });

  test('never below the upstream surcharge, never more than one minor unit above the exact margin', () => {
    fc.assert(
      fc.property(capabilities, options, fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: 0, max: 10_000 }), (caps, o, cost, extra) => {
        const offer = { costMinor: cost, priceMinor: cost + extra };
        const s = optionSurcharge(offer, caps, o);
        assert.ok(Number.isSafeInteger(s.priceMinor) && s.priceMinor >= s.costMinor);
        const exact = (s.costMinor * offer.priceMinor) / offer.costMinor;
        assert.ok(s.priceMinor >= exact - 1e-9 && s.priceMinor < exact + 1);
      }),
    );
  });
});

describe('assignedNumberMismatch', () => {
  test('the area code is read from the E.164 number; the carrier only when the upstream says', () => {
    assert.equal(nanpAreaCode('14155550123'), '415');
    assert.equal(nanpAreaCode('+14155550123'), '415');
    assert.equal(nanpAreaCode('447700900123'), null);
    assert.equal(assignedNumberMismatch(null, { phoneNumber: '14155550123' }), null);
    assert.equal(assignedNumberMismatch({ areaCodes: ['415', '212'] }, { phoneNumber: '14155550123' }), null);
    assert.match(assignedNumberMismatch({ areaCodes: ['212'] }, { phoneNumber: '14155550123' })!, /area code 415/);
    assert.match(assignedNumberMismatch({ areaCodes: ['212'] }, { phoneNumber: '447700900123' })!, /not a North American number/);
    assert.equal(assignedNumberMismatch({ carriers: ['vz'] }, { phoneNumber: '14155550123', carrier: null }), null);
    assert.equal(assignedNumberMismatch({ carriers: ['vz'] }, { phoneNumber: '14155550123', carrier: 'VZ' }), null);
    assert.match(assignedNumberMismatch({ carriers: ['vz'] }, { phoneNumber: '14155550123', carrier: 'tmo' })!, /carrier tmo/);
  });

  test('a number in one of the area codes asked for always fits; one outside never does', () => {
    fc.assert(
      fc.property(fc.uniqueArray(areaCode, { minLength: 1, maxLength: 10 }), areaCode, fc.stringMatching(/^[2-9]\d{6}$/), (asked, code, local) => {
        const verdict = assignedNumberMismatch({ areaCodes: asked }, { phoneNumber: `1${code}${local}` });
        assert.equal(verdict === null, asked.includes(code));
      }),
    );
  });
});
