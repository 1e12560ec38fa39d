import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { WebhookRejected, type Checkout, type CheckoutRequest, type CheckoutStatus, type PaymentEvent, type PaymentProcessor, type WebhookRequest } from '../processor.ts';

/**
 * The embedded processor: a checkout page served by us (src/http/routes/sandbox-checkout.ts) where
 * the customer picks Pay, Fail or Abandon, followed by a webhook signed like Stripe's
 * (`t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`) that goes through the same route and the
 * same checks as every processor's. For development and tests: whoever reaches the page can pay.
 */
export const SANDBOX_SIGNATURE_HEADER = 'namaskah-sandbox-signature';
const TOLERANCE_SECONDS = 300;

export type SandboxEventType = 'payment.succeeded' | 'payment.failed' | 'checkout.expired';

export interface SandboxPayment {
  topUpId: string;
  amountMinor: number;
  currency: string;
}

export class SandboxProcessor implements PaymentProcessor {
  readonly name = 'sandbox' as const;
  readonly secret: string;
  /** What the customer chose on each checkout page, for re-checks (this process only). */
  private readonly outcomes = new Map<string, { state: CheckoutStatus['state']; paymentId: string | null; payment: SandboxPayment }>();

  constructor(secret?: string) {
    this.secret = secret ?? randomBytes(32).toString('hex');
  }

  async createCheckout(request: CheckoutRequest): Promise<Checkout> {
    return { reference: `sbx_${request.topUpId}`, checkoutUrl: new URL(`/checkout/sandbox/${request.topUpId}`, request.publicUrl).toString() };
  }

  /** The signed webhook the checkout page sends when the customer chooses; its body and headers. */
  event(type: SandboxEventType, payment: SandboxPayment, now: Date): { body: string; headers: Record<string, string> } {
    const paymentId = type === 'payment.succeeded' ? `sbx_pay_${randomUUID()}` : null;
    const reference = `sbx_${payment.topUpId}`;
    const state = type === 'payment.succeeded' ? 'paid' : type === 'payment.failed' ? 'failed' : 'expired';
    this.outcomes.set(reference, { state, paymentId, payment });
    const body = JSON.stringify({
      id: `evt_sbx_${randomUUID()}`,
      type,
      created: Math.floor(now.getTime() / 1000),
      data: { top_up_id: payment.topUpId, reference, payment_id: paymentId, amount_minor: payment.amountMinor, currency: payment.currency },
    });
    return { body, headers: { 'content-type': 'application/json', [SANDBOX_SIGNATURE_HEADER]: signSandbox(body, this.secret, now) } };
  }

  receiveWebhook(request: WebhookRequest): PaymentEvent {
    const header = request.headers[SANDBOX_SIGNATURE_HEADER];
    if (typeof header !== 'string') throw new WebhookRejected('missing signature');
    const parts = Object.fromEntries(header.split(',').map((p) => p.split('=', 2) as [string, string]));
    const t = Number(parts.t);
    if (!Number.isSafeInteger(t) || typeof parts.v1 !== 'string') throw new WebhookRejected('malformed signature');
    const expected = Buffer.from(hmac(this.secret, `${t}.${request.rawBody.toString('utf8')}`), 'hex');
    const given = Buffer.from(parts.v1, 'hex');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new WebhookRejected('signature does not match');
    if (Math.abs(request.now.getTime() / 1000 - t) > TOLERANCE_SECONDS) throw new WebhookRejected('signature timestamp outside the tolerance');
    let parsed: { id?: unknown; type?: unknown; data?: Record<string, unknown> };
    try {
      parsed = JSON.parse(request.rawBody.toString('utf8'));
    } catch {
      throw new WebhookRejected('body is not JSON');
    }
    const data = parsed.data ?? {};
    if (typeof parsed.id !== 'string' || typeof parsed.type !== 'string') throw new WebhookRejected('event without id or type');
    const kind = parsed.type === 'payment.succeeded' ? 'paid' : parsed.type === 'payment.failed' ? 'failed' : parsed.type === 'checkout.expired' ? 'expired' : 'ignored';
    return {
      eventId: parsed.id,
      type: parsed.type,
      kind,
      topUpId: typeof data.top_up_id === 'string' ? data.top_up_id : null,
      reference: typeof data.reference === 'string' ? data.reference : null,
      paymentId: typeof data.payment_id === 'string' ? data.payment_id : null,
      amountMinor: typeof data.amount_minor === 'number' ? data.amount_minor : null,
      currency: typeof data.currency === 'string' ? data.currency.toUpperCase() : null,
      detail: kind === 'failed' ? 'the payment was declined (sandbox)' : undefined,
    };
  }

  async checkoutStatus(reference: string): Promise<CheckoutStatus> {
    const outcome = this.outcomes.get(reference);
    if (!outcome) return { state: 'pending', paymentId: null, amountMinor: null, currency: null };
    return { state: outcome.state, paymentId: outcome.paymentId, amountMinor: outcome.payment.amountMinor, currency: outcome.payment.currency };
  }
}

function hmac(secret: string, text: string): string {
  return createHmac('sha256', secret).update(text).digest('hex');
}

/** The sandbox's signature header over a body at a time (exported for tests that forge and replay). */
export function signSandbox(body: string, secret: string, at: Date): string {
  const t = Math.floor(at.getTime() / 1000);
  return `t=${t},v1=${hmac(secret, `${t}.${body}`)}`;
}
