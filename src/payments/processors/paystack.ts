import { createHmac, timingSafeEqual } from 'node:crypto';
import { WebhookRejected, type Checkout, type CheckoutRequest, type CheckoutStatus, type PaymentEvent, type PaymentProcessor, type WebhookRequest } from '../processor.ts';

/**
 * Paystack: Initialize Transaction opens the checkout (our top-up id is the transaction's
 * reference), Verify Transaction answers a re-check, and webhooks carry `x-paystack-signature`, the
 * hex HMAC-SHA512 of the raw body under the secret key. Paystack signs no timestamp, so a replay is
 * stopped by the event's record (src/payments/settlement.ts), not by age. Amounts are in the
 * currency's minor unit (kobo, pesewas, cents), as ours are.
 */
export interface PaystackSettings {
  secretKey: string;
  baseUrl: string;
  timeoutMs: number;
}

interface PaystackAnswer<T> {
  status: boolean;
  message: string;
  data: T;
}

export class PaystackError extends Error {}

export class PaystackProcessor implements PaymentProcessor {
  readonly name = 'paystack' as const;

  constructor(private readonly settings: PaystackSettings) {}

  private async call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const response = await fetch(new URL(path, this.settings.baseUrl), {
      method,
      headers: { authorization: `Bearer ${this.settings.secretKey}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(this.settings.timeoutMs),
    });
    const answer = (await response.json().catch(() => null)) as PaystackAnswer<T> | null;
    if (!response.ok || !answer?.status) {
      throw new PaystackError(`Paystack ${method} ${path}: ${response.status} ${answer?.message ?? 'no answer'}`);
    }
    return answer.data;
  }

  async createCheckout(request: CheckoutRequest): Promise<Checkout> {
    const data = await this.call<{ authorization_url: string; reference: string }>('POST', '/transaction/initialize', {
      email: request.customerEmail,
      amount: String(request.amountMinor),
      currency: request.currency,
      reference: request.topUpId,
      callback_url: request.returnUrl,
      metadata: { top_up_id: request.topUpId },
    });
    return { reference: data.reference, checkoutUrl: data.authorization_url };
  }

  receiveWebhook(request: WebhookRequest): PaymentEvent {
    const header = request.headers['x-paystack-signature'];
    if (typeof header !== 'string' || !/^[0-9a-f]{128}$/i.test(header)) throw new WebhookRejected('missing or malformed x-paystack-signature');
    const expected = createHmac('sha512', this.settings.secretKey).update(request.rawBody).digest();
    if (!timingSafeEqual(Buffer.from(header, 'hex'), expected)) throw new WebhookRejected('signature does not match');
    let parsed: { event?: unknown; data?: Record<string, any> };
    try {
      parsed = JSON.parse(request.rawBody.toString('utf8'));
    } catch {
      throw new WebhookRejected('body is not JSON');
    }
    if (typeof parsed.event !== 'string' || !parsed.data) throw new WebhookRejected('event without a name or data');
    return readPaystackEvent(parsed.event, parsed.data);
  }

  async checkoutStatus(reference: string): Promise<CheckoutStatus> {
    const data = await this.call<{ id: number; status: string; amount: number; currency: string }>(
      'GET',
      `/transaction/verify/${encodeURIComponent(reference)}`,
    );
    return {
      state: data.status === 'success' ? 'paid' : data.status === 'failed' ? 'failed' : 'pending',
      paymentId: String(data.id),
      amountMinor: data.amount,
      currency: data.currency?.toUpperCase() ?? null,
    };
  }
}

/** A verified Paystack event in the top-up flow's words. Paystack events carry no id: the event's name and its object's id make one. */
export function readPaystackEvent(name: string, data: Record<string, any>): PaymentEvent {
  // A refund's webhook may carry no id of its own: its transaction and amount then name it.
  const identity = data.id ?? data.refund_reference ?? (name === 'refund.processed' ? `${data.transaction_reference}:${data.amount}` : data.reference);
  const eventId = `${name}:${identity ?? 'unknown'}`;
  const currency = typeof data.currency === 'string' ? data.currency.toUpperCase() : null;
  const amountMinor = typeof data.amount === 'number' ? data.amount : Number.isFinite(Number(data.amount)) ? Number(data.amount) : null;
  if (name === 'charge.success' && data.status === 'success') {
    return {
      eventId,
      type: name,
      kind: 'paid',
      topUpId: data.metadata?.top_up_id ?? null,
      reference: data.reference ?? null,
      paymentId: data.id === undefined ? null : String(data.id),
      amountMinor,
      currency,
    };
  }
  if (name === 'refund.processed') {
    const transactionReference = data.transaction_reference ?? data.transaction?.reference ?? null;
    return {
      eventId,
      type: name,
      kind: 'reversed',
      topUpId: null,
      reference: transactionReference,
      paymentId: data.transaction?.id === undefined ? null : String(data.transaction.id),
      amountMinor,
      currency,
      reversal: { reference: `refund:${identity}`, kind: 'refund' },
    };
  }
  return { eventId, type: name, kind: 'ignored', topUpId: null, reference: data.reference ?? null, paymentId: null, amountMinor, currency, detail: 'not an event top-ups act on' };
}
