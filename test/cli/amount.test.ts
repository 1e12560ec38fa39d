import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMajorAmount } from '../../src/cli/amount.ts';
import { UsageError } from '../../src/cli/errors.ts';

describe('CLI amounts (major units, parsed without floating point)', () => {
  test('decimal strings become exact minor units', () => {
    const cases: [string, number][] = [
      ['12.50', 1250],
      ['12.5', 1250],
      ['12', 1200],
      ['0.01', 1],
      ['0.1', 10],
      ['-3', -300],
      ['-0.99', -99],
      ['1000000.07', 100000007],
      // 0.1 + 0.2 style values stay exact
      ['0.30', 30],
      ['4.35', 435],
      ['9999999999.99', 999999999999],
    ];
    for (const [text, minor] of cases) assert.equal(parseMajorAmount(text), minor, text);
  });

  test('zero, more than two decimals and garbage are usage errors', () => {
    for (const bad of ['0', '0.00', '-0', '1.234', '0.001', 'abc', '', ' ', '1e3', '12,50', '1.', '.5', '+5', '--5', '5-', '1 000', '0x10', 'NaN', 'Infinity', '12.50 USD', '99999999999999']) {
      assert.throws(() => parseMajorAmount(bad), UsageError, JSON.stringify(bad));
    }
  });
});
