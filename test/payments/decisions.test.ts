import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decideEvent, topUpAmountProblem, type TopUpFacts } from '../../src/payments/decisions.ts';
import type { PaymentEvent } from '../../src/payments/processor.ts';
import { readPaystackEvent } from '../../src/payments/processors/paystack.ts';
import { readStripeEvent } from '../../src/payments/processors/stripe.ts';
import { topUpStatuses } from '../../src/payments/schema.ts';

const topUp = (status: TopUpFacts['status'] = 'pending'): TopUpFacts => ({ status, amountMinor: 1000, currency: 'USD' });
const paid = (extra: Partial<PaymentEvent> = {}): PaymentEvent => ({
  eventId: 'e1',
  type: 't',
  kind: 'paid',
  topUpId: null,
  reference: null,
  paymentId: 'pay',
  amountMinor: 1000,
  currency: 'USD',
  ...extra,
});

describe('what a processor event does to a top-up', () => {
  test('only a confirmed payment of exactly the amount and currency credits, and only a top-up not yet credited', () => {
    assert.deepEqual(decideEvent(topUp(), paid()), { action: 'credit' });
    assert.deepEqual(decideEvent(topUp('failed'), paid()), { action: 'credit' });
    assert.deepEqual(decideEvent(topUp('expired'), paid()), { action: 'credit' });
    assert.deepEqual(decideEvent(topUp('credited'), paid()), { action: 'record', outcome: 'already_credited' });
    assert.equal(decideEvent(topUp('review'), paid()).action, 'record');
    assert.deepEqual(decideEvent(topUp(), paid({ amountMinor: 999 })), {
      action: 'record',
      outcome: 'mismatch',
      status: 'review',
      detail: 'paid 999, the top-up asked for 1000',
    });
    assert.equal((decideEvent(topUp(), paid({ currency: 'EUR' })) as { outcome: string }).outcome, 'mismatch');
    assert.equal((decideEvent(topUp(), paid({ currency: null })) as { outcome: string }).outcome, 'mismatch');
    assert.deepEqual(decideEvent(null, paid()), { action: 'record', outcome: 'unknown_top_up', detail: 'no top-up matches this event' });
  });

  test('property: no event but a matching paid one ever credits, whatever the top-up state', () => {
    const kinds = ['paid', 'failed', 'expired', 'reversed', 'ignored'] as const;
    fc.assert(
      fc.property(
        fc.constantFrom(...topUpStatuses),
        fc.constantFrom(...kinds),
        fc.option(fc.integer({ min: -5, max: 5000 }), { nil: null }),
        fc.constantFrom('USD', 'EUR', null),
        (status, kind, amount, currency) => {
          const decision = decideEvent(topUp(status), paid({ kind, amountMinor: amount, currency, reversal: kind === 'reversed' ? { reference: 'r', kind: 'refund' } : undefined }));
          if (decision.action === 'credit') {
            assert.equal(kind, 'paid');
            assert.equal(amount, 1000);
            assert.equal(currency, 'USD');
            assert.notEqual(status, 'credited');
            assert.notEqual(status, 'review');
          }
          if (decision.action === 'reverse') assert.ok(kind === 'reversed' && amount !== null && amount > 0);
        },
      ),
    );
  });

  test('failure and expiry close only a pending top-up', () => {
    assert.equal((decideEvent(topUp(), paid({ kind: 'failed' })) as { status?: string }).status, 'failed');
    assert.equal((decideEvent(topUp(), paid({ kind: 'expired' })) as { status?: string }).status, 'expired');
    assert.equal((decideEvent(topUp('credited'), paid({ kind: 'expired' })) as { status?: string }).status, undefined);
  });

  test('amount limits name the field', () => {
    assert.equal(topUpAmountProblem(500, { min: 500, max: 1000 }), null);
    assert.match(topUpAmountProblem(499, { min: 500, max: 1000 })!, /amount_minor must be at least 500/);
    assert.match(topUpAmountProblem(1001, { min: 500, max: 1000 })!, /at most 1000/);
  });
});

describe('processor events in our words', () => {
  const stripeEvent = (type: string, object: Record<string, unknown>) =>
    readStripeEvent({ id: 'evt_1', type, data: { object } } as unknown as Parameters<typeof readStripeEvent>[0]);

  test('Stripe: completed credits only when paid; refunds cumulative per charge; only a lost dispute reverses', () => {
    const session = { id: 'cs_1', client_reference_id: 'tu', metadata: {}, payment_intent: 'pi_1', amount_total: 1000, currency: 'usd' };
    assert.equal(stripeEvent('checkout.session.completed', { ...session, payment_status: 'paid' }).kind, 'paid');
    assert.equal(stripeEvent('checkout.session.completed', { ...session, payment_status: 'unpaid' }).kind, 'ignored');
    const succeeded = stripeEvent('checkout.session.async_payment_succeeded', { ...session, payment_status: 'paid' });
    assert.deepEqual([succeeded.kind, succeeded.topUpId, succeeded.amountMinor, succeeded.currency, succeeded.paymentId], ['paid', 'tu', 1000, 'USD', 'pi_1']);
    assert.equal(stripeEvent('checkout.session.async_payment_failed', session).kind, 'failed');
    assert.equal(stripeEvent('checkout.session.expired', session).kind, 'expired');
    const refund = stripeEvent('charge.refunded', { id: 'ch_1', amount_refunded: 300, currency: 'usd', payment_intent: 'pi_1', metadata: { top_up_id: 'tu' } });
    assert.deepEqual([refund.kind, refund.amountMinor, refund.reversal], ['reversed', 300, { reference: 'refund:ch_1', kind: 'refund' }]);
    const dispute = { id: 'dp_1', amount: 1000, currency: 'usd', payment_intent: 'pi_1', metadata: {} };
    assert.equal(stripeEvent('charge.dispute.created', { ...dispute, status: 'needs_response' }).kind, 'ignored');
    assert.equal(stripeEvent('charge.dispute.closed', { ...dispute, status: 'won' }).kind, 'ignored');
    assert.equal(stripeEvent('charge.dispute.closed', { ...dispute, status: 'lost' }).kind, 'reversed');
    assert.equal(stripeEvent('customer.created', {}).kind, 'ignored');
  });

  test('Paystack: charge.success pays, refund.processed reverses, each with a stable event id', () => {
    const success = readPaystackEvent('charge.success', { id: 42, status: 'success', reference: 'tu', amount: 5000, currency: 'NGN', metadata: { top_up_id: 'tu' } });
    assert.deepEqual([success.eventId, success.kind, success.amountMinor, success.paymentId], ['charge.success:42', 'paid', 5000, '42']);
    assert.equal(readPaystackEvent('charge.success', { id: 43, status: 'failed' }).kind, 'ignored');
    const refund = readPaystackEvent('refund.processed', { transaction_reference: 'tu', amount: 100, currency: 'NGN' });
    assert.deepEqual([refund.eventId, refund.reference, refund.reversal], ['refund.processed:tu:100', 'tu', { reference: 'refund:tu:100', kind: 'refund' }]);
  });
});
