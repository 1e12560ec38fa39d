import { z } from 'zod';

/**
 * Money is an integer count of minor units (cents). JavaScript numbers hold integers exactly up to
 * 2^53, far above any wallet; every value is checked on the way in so a float never becomes money.
 * Decimal amounts in major units ("12.50") exist only at the edges — the CLI, reports,
 * notifications, the upstreams' price lists — and are converted here, by string arithmetic.
 */
export type Minor = number & { readonly __minor: unique symbol };

/** Digits of the minor unit: one currency per installation (CURRENCY), with two decimals. */
const DECIMALS = 2;
const SCALE = 10n ** BigInt(DECIMALS);

export function toMinor(value: number | string | bigint): Minor {
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isSafeInteger(n)) throw new RangeError(`not an integer amount of minor units: ${String(value)}`);
  return n as Minor;
}

/** Integer minor units as a decimal in major units: 1250 → "12.50", -5 → "-0.05". */
export function minorToDecimal(amount: number): string {
  if (!Number.isSafeInteger(amount)) throw new RangeError(`not an integer amount of minor units: ${amount}`);
  const sign = amount < 0 ? '-' : '';
  const digits = String(Math.abs(amount)).padStart(DECIMALS + 1, '0');
  return `${sign}${digits.slice(0, -DECIMALS)}.${digits.slice(-DECIMALS)}`;
}

/** An amount for people: "12.50 USD". */
export function formatMinor(amount: number, currency: string): string {
  return `${minorToDecimal(amount)} ${currency}`;
}

/**
 * What happens to digits beyond the minor unit: `up` and `down` round the amount's size (an upstream
 * cost rounds up, so we never under-estimate what we pay; a balance rounds down, so we never
 * over-state it), `exact` refuses them (an operator typing an amount).
 */
export type Rounding = 'up' | 'down' | 'exact';

/**
 * A plain decimal in major units ("12.50", "3", 0.75, and with `signed` "-3.05") as integer minor
 * units, or null for anything else (exponents, separators, signs other than a leading minus, more
 * than a safe integer). Numbers are read in their shortest round-trip form, so 0.1 + 0.2 is "0.30000000000000004".
 */
export function decimalToMinor(value: number | string, options: { rounding: Rounding; signed?: boolean }): number | null {
  if (typeof value === 'number' && !Number.isFinite(value)) return null;
  const match = /^(-)?(\d+)(?:\.(\d+))?$/.exec(typeof value === 'number' ? String(value) : value.trim());
  if (!match) return null;
  const [, minus, whole = '', fraction = ''] = match;
  if (minus && !options.signed) return null;
  const rest = fraction.slice(DECIMALS);
  if (options.rounding === 'exact' && rest.length > 0) return null;
  let minor = BigInt(whole) * SCALE + BigInt(fraction.slice(0, DECIMALS).padEnd(DECIMALS, '0'));
  if (options.rounding === 'up' && /[1-9]/.test(rest)) minor += 1n;
  if (minor > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return Number(minus ? -minor : minor);
}

/** How an amount is written on the wire (API answers, reports): integer minor units. */
export const MinorUnits = z.number().int().describe('integer amount in minor units (cents)');
