import { MAX_CREDIT_MINOR } from '../accounts/policy.ts';
import { UsageError } from './errors.ts';

const AMOUNT = /^(-)?(\d{1,13})(?:\.(\d{1,2}))?$/;

/**
 * "12.50" → 1250 minor units, by string arithmetic only (never through a float): the currency is
 * assumed to have two decimals. Refuses zero, more than two decimals, signs other than a leading
 * minus, exponents, separators and anything else that is not a plain decimal.
 */
export function parseMajorAmount(text: string): number {
  const match = AMOUNT.exec(text.trim());
  if (!match) {
    throw new UsageError(`amount "${text}" is not a decimal amount like 12.50 (at most 2 decimals, no separators)`);
  }
  const [, minus, whole, fraction = ''] = match;
  const minor = BigInt(whole!) * 100n + BigInt(fraction.padEnd(2, '0'));
  if (minor === 0n) throw new UsageError('amount must not be zero');
  if (minor > BigInt(MAX_CREDIT_MINOR)) throw new UsageError(`amount "${text}" is larger than this tool accepts`);
  return Number(minus ? -minor : minor);
}
