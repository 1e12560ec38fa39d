import type { PaymentEvent } from './processor.ts';
import { applyPaymentEvent, type EventResult } from './settlement.ts';
import type { TopUpRow } from './schema.ts';
import type { PaymentDeps } from './top-ups.ts';

/**
 * Asks the processor about a top-up and applies its answer through the same path as a webhook (as
 * an event of our own, `recheck:…`, recorded like any other): a paid checkout is credited (once — the
 * ledger key is the top-up's), a failed or expired one is closed. With `expireIfOpen`, a checkout
 * the processor still calls open is closed as expired (reconcile, past TOP_UP_CHECKOUT_TTL_MINUTES).
 */
export async function recheckTopUp(deps: PaymentDeps, topUp: TopUpRow, options: { expireIfOpen?: boolean } = {}): Promise<EventResult & { state: string }> {
  const processor = deps.processors.get(topUp.processor);
  if (!processor || !topUp.processorReference) {
    if (!options.expireIfOpen || topUp.status !== 'pending') return { outcome: 'ignored', topUpId: topUp.id, state: 'unknown' };
    return { ...(await apply(deps, topUp, 'expired', null, null, null)), state: 'unknown' };
  }
  const status = await processor.checkoutStatus(topUp.processorReference);
  const state = status.state === 'pending' && options.expireIfOpen ? 'expired' : status.state;
  if (state === 'pending') return { outcome: 'ignored', topUpId: topUp.id, state: status.state };
  const kind = state === 'paid' ? 'paid' : state;
  return { ...(await apply(deps, topUp, kind, status.paymentId, status.amountMinor, status.currency)), state: status.state };
}

function apply(
  deps: PaymentDeps,
  topUp: TopUpRow,
  kind: 'paid' | 'failed' | 'expired',
  paymentId: string | null,
  amountMinor: number | null,
  currency: string | null,
): Promise<EventResult> {
  const event: PaymentEvent = {
    eventId: `recheck:${topUp.id}:${kind}:${paymentId ?? '-'}`,
    type: `recheck.${kind}`,
    kind,
    topUpId: topUp.id,
    reference: topUp.processorReference,
    paymentId,
    amountMinor,
    currency,
    detail: kind === 'expired' ? 'the checkout was not completed in time' : undefined,
  };
  return applyPaymentEvent(deps.database, topUp.processor, event, deps.clock.now());
}
