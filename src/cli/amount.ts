import { MAX_CREDIT_MINOR } from '../accounts/policy.ts';
import { decimalToMinor } from '../money.ts';
import { UsageError } from './errors.ts';

/**
 * "12.50" → 1250 minor units, "-3" → -300, without floating point (src/money.ts). Refuses zero,
 * more than two decimals, signs other than a leading minus, exponents, separators, anything else
 * that is not a plain decimal, and amounts above what an operator may credit at once.
 */
export function parseMajorAmount(text: string): number {
  const minor = decimalToMinor(text, { rounding: 'exact', signed: true });
  if (minor === null) {
    throw new UsageError(`amount "${text}" is not a decimal amount like 12.50 (at most 2 decimals, no separators)`);
  }
  if (minor === 0) throw new UsageError('amount must not be zero');
  if (Math.abs(minor) > MAX_CREDIT_MINOR) throw new UsageError(`amount "${text}" is larger than this tool accepts`);
  return minor;
}
