import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decimalToMinor, formatMinor, minorToDecimal } from '../../src/money.ts';

describe('decimal money, converted in one place', () => {
  test('minor units are written as two-decimal major units, sign first', () => {
    const cases: [number, string][] = [
      [0, '0.00'],
      [5, '0.05'],
      [50, '0.50'],
      [1250, '12.50'],
      [-5, '-0.05'],
      [-1250, '-12.50'],
      [Number.MAX_SAFE_INTEGER, '90071992547409.91'],
    ];
    for (const [minor, text] of cases) assert.equal(minorToDecimal(minor), text, String(minor));
    assert.equal(formatMinor(-305, 'EUR'), '-3.05 EUR');
    assert.throws(() => minorToDecimal(1.5), RangeError);
  });

  test('decimals become minor units by string arithmetic, rounding only as asked', () => {
    assert.equal(decimalToMinor('12.345', { rounding: 'up' }), 1235);
    assert.equal(decimalToMinor('12.345', { rounding: 'down' }), 1234);
    assert.equal(decimalToMinor('12.345', { rounding: 'exact' }), null);
    assert.equal(decimalToMinor('12.340', { rounding: 'up' }), 1234);
    assert.equal(decimalToMinor(0.1 + 0.2, { rounding: 'down' }), 30);
    assert.equal(decimalToMinor('-3.05', { rounding: 'exact' }), null, 'negative only when signed');
    assert.equal(decimalToMinor('-3.05', { rounding: 'exact', signed: true }), -305);
    assert.equal(decimalToMinor('90071992547409.91', { rounding: 'exact' }), Number.MAX_SAFE_INTEGER);
    assert.equal(decimalToMinor('90071992547409.92', { rounding: 'exact' }), null, 'beyond a safe integer');
    for (const bad of ['', '1e3', '1,5', '+5', '.5', '5.', '0x10', 'NaN']) assert.equal(decimalToMinor(bad, { rounding: 'up', signed: true }), null, bad);
    for (const minor of [0, 1, -99, 123456789]) assert.equal(decimalToMinor(minorToDecimal(minor), { rounding: 'exact', signed: true }), minor);
  });
});
