import type { PaymentEvent } from './processor.ts';
import type { PaymentEventOutcome, TopUpStatus } from './schema.ts';

/**
 * What a verified processor event does to a top-up, as a pure function (unit-tested). The I/O that
 * carries it out is src/payments/settlement.ts.
 */
export type EventDecision =
  | { action: 'credit' }
  | { action: 'record'; outcome: PaymentEventOutcome; status?: TopUpStatus; detail?: string }
  | { action: 'reverse' };

export interface TopUpFacts {
  status: TopUpStatus;
  amountMinor: number;
  currency: string;
}

export function decideEvent(topUp: TopUpFacts | null, event: PaymentEvent): EventDecision {
  if (!topUp) {
    const money = event.kind === 'paid' || event.kind === 'reversed';
    return { action: 'record', outcome: money ? 'unknown_top_up' : 'ignored', detail: 'no top-up matches this event' };
  }
  switch (event.kind) {
    case 'paid': {
      if (topUp.status === 'credited') return { action: 'record', outcome: 'already_credited' };
      if (event.currency !== topUp.currency) {
        return {
          action: 'record',
          outcome: 'mismatch',
          status: 'review',
          detail: `paid in ${event.currency ?? 'an unknown currency'}, the top-up is in ${topUp.currency}`,
        };
      }
      if (event.amountMinor !== topUp.amountMinor) {
        return {
          action: 'record',
          outcome: 'mismatch',
          status: 'review',
          detail: `paid ${event.amountMinor ?? 'an unknown amount'}, the top-up asked for ${topUp.amountMinor}`,
        };
      }
      // A payment confirmed after a failure or expiry still took the customer's money: credit it.
      // One under review waits for an admin.
      if (topUp.status === 'review') return { action: 'record', outcome: 'mismatch', detail: 'the top-up is under review' };
      return { action: 'credit' };
    }
    case 'failed':
      return topUp.status === 'pending'
        ? { action: 'record', outcome: 'failed', status: 'failed', detail: event.detail }
        : { action: 'record', outcome: 'ignored', detail: `the top-up is already ${topUp.status}` };
    case 'expired':
      return topUp.status === 'pending'
        ? { action: 'record', outcome: 'expired', status: 'expired', detail: event.detail }
        : { action: 'record', outcome: 'ignored', detail: `the top-up is already ${topUp.status}` };
    case 'reversed':
      if (!event.reversal || event.amountMinor === null || event.amountMinor <= 0) {
        return { action: 'record', outcome: 'ignored', detail: 'a reversal without an amount' };
      }
      return { action: 'reverse' };
    case 'ignored':
      return { action: 'record', outcome: 'ignored', detail: event.detail };
  }
}

/** Top-up amounts the API accepts, from the configuration. */
export function topUpAmountProblem(amountMinor: number, limits: { min: number; max: number }): string | null {
  if (!Number.isSafeInteger(amountMinor)) return 'amount_minor must be an integer of minor units';
  if (amountMinor < limits.min) return `amount_minor must be at least ${limits.min}`;
  if (amountMinor > limits.max) return `amount_minor must be at most ${limits.max}`;
  return null;
}
