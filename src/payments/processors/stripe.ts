import { createRequire } from 'node:module';
import type Stripe from 'stripe';
import { WebhookRejected, type Checkout, type CheckoutRequest, type CheckoutStatus, type PaymentEvent, type PaymentProcessor, type WebhookRequest } from '../processor.ts';

/**
 * Stripe Checkout Sessions through the official SDK. The SDK checks webhook signatures
 * (`Stripe-Signature`, with its default 300 s tolerance measured against our injected clock). Only
 * `checkout.session.completed` with `payment_status: paid`, or `async_payment_succeeded`, credits;
 * `charge.refunded` and a dispute closed as `lost` take money back.
 */
export interface StripeSettings {
  secretKey: string;
  webhookSecret: string;
  /** https://api.stripe.com, or a local server speaking Stripe's wire format. */
  apiBaseUrl: string;
  timeoutMs: number;
}

const TOLERANCE_SECONDS = 300;

/** The SDK is loaded by the first processor made: a server without Stripe never holds it (3.5 MB of heap). */
const loadStripe = () => createRequire(import.meta.url)('stripe') as typeof Stripe;

export class StripeProcessor implements PaymentProcessor {
  readonly name = 'stripe' as const;
  private readonly stripe: Stripe;

  constructor(private readonly settings: StripeSettings) {
    const base = new URL(settings.apiBaseUrl);
    const protocol = base.protocol === 'http:' ? 'http' : 'https';
    const StripeSdk = loadStripe();
    this.stripe = new StripeSdk(settings.secretKey, {
      host: base.hostname,
      port: base.port || (protocol === 'http' ? 80 : 443),
      protocol,
      timeout: settings.timeoutMs,
      // A create is made safe to retry by its idempotency key (the top-up's id).
      maxNetworkRetries: 2,
      telemetry: false,
    });
  }

  async createCheckout(request: CheckoutRequest): Promise<Checkout> {
    const session = await this.stripe.checkout.sessions.create(
      {
        mode: 'payment',
        line_items: [
          {
            quantity: 1,
            price_data: { currency: request.currency.toLowerCase(), unit_amount: request.amountMinor, product_data: { name: 'Wallet top-up' } },
          },
        ],
        client_reference_id: request.topUpId,
        customer_email: request.customerEmail,
        metadata: { top_up_id: request.topUpId },
        // Carried onto the PaymentIntent and its charge, so refunds and disputes name the top-up.
        payment_intent_data: { metadata: { top_up_id: request.topUpId } },
        success_url: request.returnUrl,
        cancel_url: request.returnUrl,
      },
      { idempotencyKey: `top-up-checkout:${request.topUpId}` },
    );
    if (!session.url) throw new Error(`Stripe returned checkout session ${session.id} without a url`);
    return { reference: session.id, checkoutUrl: session.url };
  }

  receiveWebhook(request: WebhookRequest): PaymentEvent {
    const header = request.headers['stripe-signature'];
    if (typeof header !== 'string') throw new WebhookRejected('missing Stripe-Signature');
    let event: Stripe.Event;
    try {
      event = this.stripe.webhooks.constructEvent(
        request.rawBody,
        header,
        this.settings.webhookSecret,
        TOLERANCE_SECONDS,
        undefined,
        // The SDK takes the receipt time in milliseconds (it divides by 1000 itself).
        request.now.getTime(),
      );
    } catch (error) {
      throw new WebhookRejected(error instanceof Error ? error.message : 'signature verification failed');
    }
    return readStripeEvent(event);
  }

  async checkoutStatus(reference: string): Promise<CheckoutStatus> {
    const session = await this.stripe.checkout.sessions.retrieve(reference);
    const paid = session.status === 'complete' && session.payment_status === 'paid';
    return {
      state: paid ? 'paid' : session.status === 'expired' ? 'expired' : 'pending',
      paymentId: paymentIntentId(session.payment_intent),
      amountMinor: session.amount_total ?? null,
      currency: session.currency ? session.currency.toUpperCase() : null,
    };
  }
}

function paymentIntentId(value: string | { id: string } | null | undefined): string | null {
  if (!value) return null;
  return typeof value === 'string' ? value : value.id;
}

function metadataTopUp(metadata: Record<string, string> | null | undefined): string | null {
  return metadata?.top_up_id ?? null;
}

/** A verified Stripe event in the top-up flow's words (exported for unit tests). */
export function readStripeEvent(event: Stripe.Event): PaymentEvent {
  const base = { eventId: event.id, type: event.type };
  switch (event.type) {
    case 'checkout.session.completed':
    case 'checkout.session.async_payment_succeeded':
    case 'checkout.session.async_payment_failed':
    case 'checkout.session.expired': {
      const session = event.data.object;
      const facts = {
        ...base,
        topUpId: session.client_reference_id ?? metadataTopUp(session.metadata),
        reference: session.id,
        paymentId: paymentIntentId(session.payment_intent),
        amountMinor: session.amount_total ?? null,
        currency: session.currency ? session.currency.toUpperCase() : null,
      };
      if (event.type === 'checkout.session.expired') return { ...facts, kind: 'expired', detail: 'the checkout expired' };
      if (event.type === 'checkout.session.async_payment_failed') return { ...facts, kind: 'failed', detail: 'the payment failed' };
      if (session.payment_status !== 'paid') {
        return { ...facts, kind: 'ignored', detail: `completed with payment_status ${session.payment_status}; waiting for the payment` };
      }
      return { ...facts, kind: 'paid' };
    }
    case 'charge.refunded': {
      const charge = event.data.object;
      return {
        ...base,
        kind: 'reversed',
        topUpId: metadataTopUp(charge.metadata),
        reference: null,
        paymentId: paymentIntentId(charge.payment_intent),
        amountMinor: charge.amount_refunded,
        currency: charge.currency.toUpperCase(),
        // Stripe reports a charge's refunds cumulatively: one receivable per charge, raised as it grows.
        reversal: { reference: `refund:${charge.id}`, kind: 'refund' },
      };
    }
    case 'charge.dispute.created':
    case 'charge.dispute.closed': {
      const dispute = event.data.object;
      const facts = {
        ...base,
        topUpId: metadataTopUp(dispute.metadata),
        reference: null,
        paymentId: paymentIntentId(dispute.payment_intent),
        amountMinor: dispute.amount,
        currency: dispute.currency.toUpperCase(),
      };
      if (event.type === 'charge.dispute.closed' && dispute.status === 'lost') {
        return { ...facts, kind: 'reversed', reversal: { reference: `dispute:${dispute.id}`, kind: 'dispute' } };
      }
      return { ...facts, kind: 'ignored', detail: `dispute ${dispute.status}; money is taken back only when it is lost` };
    }
    default:
      return { ...base, kind: 'ignored', topUpId: null, reference: null, paymentId: null, amountMinor: null, currency: null, detail: 'not an event top-ups act on' };
  }
}
