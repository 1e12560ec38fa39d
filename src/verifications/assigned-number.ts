import { canonicalOptions } from '../catalogue/number-options.ts';
import type { NumberOptions, ProviderOrder } from '../providers/provider.ts';

/**
 * Checks the number an upstream assigned against what the customer asked for. The area code is read
 * from the E.164 number itself (a North American number: 1 + three-digit area code + seven digits);
 * the carrier only when the upstream says which one it assigned. A mismatch is a definite failure at
 * that upstream: the order is cancelled there and the customer is not charged (purchase.ts).
 *
 * Returns null when the number fits, otherwise why it does not.
 */
export function assignedNumberMismatch(options: NumberOptions | null | undefined, order: Pick<ProviderOrder, 'phoneNumber' | 'carrier'>): string | null {
  const o = canonicalOptions(options ?? undefined);
  if (o.areaCodes) {
    const areaCode = nanpAreaCode(order.phoneNumber);
    if (areaCode === null) return `the number ${order.phoneNumber} is not a North American number with an area code`;
    if (!o.areaCodes.includes(areaCode)) return `the number's area code ${areaCode} is not one of ${o.areaCodes.join(', ')}`;
  }
  if (o.carriers && order.carrier !== undefined && order.carrier !== null && order.carrier !== '') {
    const carrier = order.carrier.toLowerCase();
    if (!o.carriers.includes(carrier)) return `the number's carrier ${carrier} is not one of ${o.carriers.join(', ')}`;
  }
  return null;
}

/** The area code of a NANP number written as E.164 digits ("14155550123" → "415"), or null. */
export function nanpAreaCode(phoneNumber: string): string | null {
  const digits = phoneNumber.replace(/^\+/, '');
  const match = /^1([2-9]\d{2})[2-9]\d{6}$/.exec(digits);
  return match ? match[1]! : null;
}
