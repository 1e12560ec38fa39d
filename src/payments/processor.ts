import type { ProcessorName } from './schema.ts';

/**
 * The contract every payment processor implements (sandbox, Stripe, Paystack). A processor opens a
 * checkout, proves that a webhook came from it, reads its events into the few facts the top-up
 * flow acts on, and answers a re-check. It never touches the database: src/payments/settlement.ts
 * decides what an event does to a top-up and the ledger.
 */
export interface CheckoutRequest {
  topUpId: string;
  amountMinor: number;
  /** ISO 4217, upper case. */
  currency: string;
  customerEmail: string;
  /** Where the customer comes back to, after paying or not. */
  returnUrl: string;
  /** Our own public address (the sandbox's checkout page lives there). */
  publicUrl: string;
}

export interface Checkout {
  /** The processor's id of this checkout (Checkout Session id, transaction reference, ...). */
  reference: string;
  checkoutUrl: string;
}

/**
 * What an event says, in our words:
 * - `paid`: the processor confirms it has the money (the only thing that credits);
 * - `failed` / `expired`: the checkout ended without money;
 * - `reversed`: the processor took money back (refund, lost dispute);
 * - `ignored`: nothing to do (a dispute opened, an unpaid completion, an unknown type), recorded.
 */
export type PaymentEventKind = 'paid' | 'failed' | 'expired' | 'reversed' | 'ignored';

export interface PaymentEvent {
  /** Unique per processor and event: the key that makes a replay do nothing. */
  eventId: string;
  /** The processor's own event name (`checkout.session.completed`, `charge.success`, ...). */
  type: string;
  kind: PaymentEventKind;
  /** Our top-up id when the processor echoes it back (metadata, client reference). */
  topUpId: string | null;
  /** The processor's checkout reference, to find the top-up when no id came back. */
  reference: string | null;
  /** The processor's payment (PaymentIntent, transaction id). */
  paymentId: string | null;
  /** Paid: the amount confirmed; reversed: the total reversed so far under `reversalReference`. */
  amountMinor: number | null;
  /** ISO 4217, upper case. */
  currency: string | null;
  /** Reversed: the processor's refund/dispute identity (one receivable per reference). */
  reversal?: { reference: string; kind: 'refund' | 'dispute' };
  detail?: string;
}

/** A re-check's answer: the processor's current view of a checkout. */
export interface CheckoutStatus {
  state: 'paid' | 'pending' | 'failed' | 'expired';
  paymentId: string | null;
  amountMinor: number | null;
  currency: string | null;
}

export interface WebhookRequest {
  rawBody: Buffer;
  headers: Record<string, string | string[] | undefined>;
  now: Date;
}

export class WebhookRejected extends Error {}

export interface PaymentProcessor {
  readonly name: ProcessorName;
  createCheckout(request: CheckoutRequest): Promise<Checkout>;
  /**
   * Verifies the signature over the raw bytes (and its age, where the processor signs a time) and
   * reads the event. Throws WebhookRejected for anything not provably from the processor.
   */
  receiveWebhook(request: WebhookRequest): PaymentEvent;
  /** Asks the processor about a checkout, for an admin re-check and reconcile. */
  checkoutStatus(reference: string): Promise<CheckoutStatus>;
}

export type PaymentProcessors = ReadonlyMap<ProcessorName, PaymentProcessor>;
