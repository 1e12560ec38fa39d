import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { errorTable, type ErrorCode } from '../../src/errors.ts';
import { decimalToMinor } from '../../src/money.ts';
import { DEFAULT_COUNTRY_CODES, DEFAULT_SERVICE_CODES } from '../../src/providers/sms-activate/adapter.ts';
import { majorUnits, oneLine, protocolTime, tokenForDomainError } from '../../src/sms-activate-api/answers.ts';
import {
  chooseCountry,
  codeForService,
  COUNTRIES,
  countryIdFor,
  countryNameFor,
  protocolCurrency,
  SERVICE_CODES,
  serviceForCode,
} from '../../src/sms-activate-api/codes.ts';

/** The protocol's code tables and the pure pieces of its answers. */
describe('SMS-Activate protocol codes', () => {
  test('the well-known service codes name the catalogue services', () => {
    // The codes the protocol's tools send for the services everyone buys.
    const wellKnown = 'wa=whatsapp tg=telegram go=google fb=facebook ig=instagram tw=twitter ds=discord mm=microsoft am=amazon ub=uber'
      .split(' ')
      .map((pair) => pair.split('='));
    for (const [code = '', service = ''] of wellKnown) {
      assert.equal(serviceForCode(code), service);
      assert.equal(serviceForCode(code.toUpperCase()), service);
      assert.equal(codeForService(service), code);
    }
    const codes = Object.keys(SERVICE_CODES);
    const services = Object.values(SERVICE_CODES);
    assert.equal(new Set(services).size, services.length, 'one code per service');
    for (const code of codes) assert.match(code, /^[a-z]{2}$/);
  });

  test('any other service answers to its name without underscores', () => {
    assert.equal(codeForService('test_success'), 'testsuccess');
    assert.equal(codeForService('test_provider_error'), 'testprovidererror');
    assert.equal(serviceForCode('testsuccess'), undefined);
    assert.equal(serviceForCode('w_a'), 'whatsapp', 'underscores never matter');
  });

  test('countries: numeric ids of the table and ISO alpha-2 codes; omitted means the default; anything else is unknown', () => {
    assert.deepEqual(chooseCountry(undefined, 'US'), { iso: 'US', id: '12' });
    assert.deepEqual(chooseCountry('', 'GB'), { iso: 'GB', id: '16' });
    assert.deepEqual(chooseCountry(' 0 ', 'US'), { iso: 'RU', id: '0' });
    assert.deepEqual(chooseCountry('6', 'US'), { iso: 'ID', id: '6' });
    assert.deepEqual(chooseCountry('12', 'GB'), { iso: 'US', id: '12' });
    assert.deepEqual(chooseCountry('187', 'GB'), { iso: 'US', id: '187' });
    assert.deepEqual(chooseCountry('016', 'US'), { iso: 'GB', id: '16' });
    assert.deepEqual(chooseCountry('gb', 'US'), { iso: 'GB', id: '16' });
    assert.deepEqual(chooseCountry('ZZ', 'US'), { iso: 'ZZ', id: 'ZZ' }, 'the catalogue decides whether it is sold');
    for (const raw of ['5', '9999', '12345', '-1', '1.5', 'USA', 'U', 'U5', '١٢']) assert.equal(chooseCountry(raw, 'US'), 'unknown', raw);
    assert.equal(countryIdFor('US'), '12');
    assert.equal(countryNameFor('US'), 'USA');
    assert.equal(countryNameFor('ZZ'), 'ZZ');
    const ids = COUNTRIES.map((c) => c.id);
    assert.equal(new Set(ids).size, ids.length, 'one country per id');
    for (const c of COUNTRIES) assert.match(c.iso, /^[A-Z]{2}$/);
  });

  test('the table agrees with the codes the SMS-Activate adapter sends upstream', () => {
    for (const [service, code] of Object.entries(DEFAULT_SERVICE_CODES)) assert.equal(serviceForCode(code), service, code);
    for (const [iso, id] of Object.entries(DEFAULT_COUNTRY_CODES)) assert.deepEqual(chooseCountry(id, 'US'), { iso, id }, iso);
  });

  test('currencies as the protocol states them: ISO 4217 numeric when known', () => {
    assert.equal(protocolCurrency('USD'), 840);
    assert.equal(protocolCurrency('RUB'), 643);
    assert.equal(protocolCurrency('XTS'), 'XTS');
  });
});

describe('SMS-Activate protocol answers', () => {
  test('each refusal of the purchase and cancel flows has its protocol word; anything else is ours', () => {
    const expected: Partial<Record<ErrorCode, string>> = {
      insufficient_funds: 'NO_BALANCE',
      no_numbers: 'NO_NUMBERS',
      provider_unavailable: 'NO_NUMBERS',
      unknown_service: 'NO_NUMBERS',
      too_many_active: 'TOO_MANY_ACTIVE_RENTALS',
      option_not_offered: 'WRONG_OPERATOR',
      rate_limited: 'RATE_LIMITED',
      idempotency_key_reused: 'IDEMPOTENCY_KEY_REUSED',
      idempotency_in_progress: 'IDEMPOTENCY_IN_PROGRESS',
      // REQUIRE_VERIFIED_EMAIL_FOR=purchase: the protocol's word for an account that may not buy.
      email_unverified: 'ACCOUNT_INACTIVE',
    };
    for (const code of Object.keys(errorTable) as ErrorCode[]) {
      const answer = tokenForDomainError(code, {});
      if (code === 'price_exceeds_max') continue;
      assert.deepEqual(answer, expected[code] ? { kind: 'text', body: expected[code], status: 200 } : undefined, code);
    }
    assert.deepEqual(tokenForDomainError('price_exceeds_max', { price_minor: 120 }), { kind: 'text', body: 'WRONG_MAX_PRICE:1.20', status: 200 });
    // The upstream's price above our cap: nothing the customer's maxPrice can change.
    assert.deepEqual(tokenForDomainError('price_exceeds_max', {}), { kind: 'text', body: 'NO_NUMBERS', status: 200 });
  });

  test('prices in JSON are exact: the number printed is the decimal of the minor units', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10 ** 13 }), (minor) => {
        assert.equal(decimalToMinor(JSON.stringify(majorUnits(minor)), { rounding: 'exact' }), minor);
      }),
      { numRuns: 2000, seed: 15 },
    );
    assert.equal(JSON.stringify(majorUnits(120)), '1.2');
    assert.equal(JSON.stringify(majorUnits(5)), '0.05');
  });

  test('timestamps "YYYY-MM-DD HH:MM:SS" in UTC; text after a token stays on its line', () => {
    assert.equal(protocolTime(new Date('2026-03-01T12:34:56.789Z')), '2026-03-01 12:34:56');
    assert.equal(oneLine('a\r\nb\nc'), 'a b c');
  });
});
