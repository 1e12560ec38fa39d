import { z } from 'zod';

/**
 * Money is an integer count of minor units (cents). JavaScript numbers hold integers exactly up to
 * 2^53, far above any wallet; every value is checked on the way in so a float never becomes money.
 */
export type Minor = number & { readonly __minor: unique symbol };

export function toMinor(value: number | string | bigint): Minor {
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isSafeInteger(n)) throw new RangeError(`not an integer amount of minor units: ${String(value)}`);
  return n as Minor;
}

export function formatMinor(amount: number, currency: string): string {
  const sign = amount < 0 ? '-' : '';
  const abs = Math.abs(amount);
  const major = Math.trunc(abs / 100);
  const cents = String(abs % 100).padStart(2, '0');
  return `${sign}${major}.${cents} ${currency}`;
}

/** How an amount is written on the wire (API answers, reports): integer minor units. */
export const MinorUnits = z.number().int().describe('integer amount in minor units (cents)');
