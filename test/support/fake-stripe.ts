/**
 * A local Stripe API for tests, speaking Stripe's wire format as the official SDK uses it: form-encoded
 * POST bodies with bracketed keys (`line_items[0][price_data][unit_amount]`), `Authorization: Bearer
 * sk_…`, `Idempotency-Key` (the same key returns the first answer; another body with it is a 400
 * `idempotency_error`), JSON objects with `object` names, and `{error: {type, message, param}}`
 * answers. Checkout Sessions are created and retrieved; the controls complete, fail, expire, refund
 * and dispute them, returning the Event objects Stripe would send, and `sign` makes the
 * Stripe-Signature header with the SDK's own test helper.
 */
import { randomBytes } from 'node:crypto';
import Stripe from 'stripe';
import { listen, recordRequest, send, type RecordedRequest } from './fake-upstream.ts';

export interface FakeSession {
  id: string;
  object: 'checkout.session';
  amount_subtotal: number;
  amount_total: number;
  currency: string;
  client_reference_id: string | null;
  customer_email: string | null;
  metadata: Record<string, string>;
  mode: 'payment';
  payment_intent: string | null;
  payment_status: 'paid' | 'unpaid' | 'no_payment_required';
  status: 'open' | 'complete' | 'expired';
  success_url: string;
  cancel_url: string | null;
  url: string | null;
  created: number;
  expires_at: number;
  livemode: false;
}

interface FakeCharge {
  id: string;
  object: 'charge';
  amount: number;
  amount_refunded: number;
  currency: string;
  payment_intent: string;
  metadata: Record<string, string>;
  refunded: boolean;
  status: 'succeeded';
  paid: true;
  created: number;
  livemode: false;
}

const id = (prefix: string) => `${prefix}_test_${randomBytes(12).toString('hex')}`;

export interface FakeStripe {
  url: string;
  requests: RecordedRequest[];
  sessions: Map<string, FakeSession>;
  /** Makes the next n session creations answer 500 (an outage). */
  failNextCreates(n: number): void;
  /** The customer paid (or, with `paymentStatus: 'unpaid'`, completed an asynchronous method still in flight). */
  complete(sessionId: string, options?: { paymentStatus?: 'paid' | 'unpaid'; amountTotal?: number; currency?: string }): Stripe.Event;
  asyncSucceeded(sessionId: string): Stripe.Event;
  asyncFailed(sessionId: string): Stripe.Event;
  expire(sessionId: string): Stripe.Event;
  /** Refunds `amount` more of the session's charge; the event carries the cumulative amount_refunded. */
  refund(sessionId: string, amount: number): Stripe.Event;
  dispute(sessionId: string, status: 'needs_response' | 'lost' | 'won', amount?: number): Stripe.Event;
  /** The raw body and Stripe-Signature header of an event, signed at `at` (seconds) with `secret`. */
  sign(event: Stripe.Event, secret: string, atSeconds: number): { body: string; signature: string };
  close(): Promise<void>;
}

export async function startFakeStripe(options: { secretKey: string; now: () => Date }): Promise<FakeStripe> {
  const requests: RecordedRequest[] = [];
  const sessions = new Map<string, FakeSession>();
  const charges = new Map<string, FakeCharge>();
  const idempotent = new Map<string, { body: string; answer: string }>();
  let failCreates = 0;
  const seconds = () => Math.floor(options.now().getTime() / 1000);

  const error = (status: number, type: string, message: string, param?: string) => ({
    status,
    headers: { 'content-type': 'application/json', 'request-id': id('req') },
    body: JSON.stringify({ error: { type, message, ...(param ? { param } : {}) } }),
  });
  const json = (body: unknown) => ({ status: 200, headers: { 'content-type': 'application/json', 'request-id': id('req') }, body: JSON.stringify(body) });

  const server = await listen(async (req, res) => {
    const request = await recordRequest(req);
    requests.push(request);
    if (req.headers.authorization !== `Bearer ${options.secretKey}`) {
      return send(res, error(401, 'invalid_request_error', 'Invalid API Key provided'));
    }
    if (request.method === 'POST' && request.path === '/v1/checkout/sessions') {
      if (failCreates > 0) {
        failCreates -= 1;
        return send(res, error(500, 'api_error', 'An unknown error occurred'));
      }
      const key = req.headers['idempotency-key'];
      if (typeof key === 'string') {
        const seen = idempotent.get(key);
        if (seen && seen.body !== request.body) {
          return send(res, error(400, 'idempotency_error', 'Keys for idempotent requests can only be used with the same parameters they were first used with.'));
        }
        if (seen) return send(res, { status: 200, headers: { 'content-type': 'application/json', 'idempotent-replayed': 'true' }, body: seen.answer });
      }
      const form = new URLSearchParams(request.body);
      const amount = Number(form.get('line_items[0][price_data][unit_amount]'));
      const quantity = Number(form.get('line_items[0][quantity]') ?? '1');
      const currency = form.get('line_items[0][price_data][currency]');
      if (form.get('mode') !== 'payment') return send(res, error(400, 'invalid_request_error', 'Missing required param: mode.', 'mode'));
      if (!form.get('success_url')) return send(res, error(400, 'invalid_request_error', 'Missing required param: success_url.', 'success_url'));
      if (!Number.isSafeInteger(amount) || amount <= 0 || !currency || !/^[a-z]{3}$/.test(currency)) {
        return send(res, error(400, 'invalid_request_error', 'Invalid line_items[0][price_data].', 'line_items[0][price_data]'));
      }
      const metadata: Record<string, string> = {};
      const intentMetadata: Record<string, string> = {};
      for (const [name, value] of form) {
        const m = /^metadata\[(.+)\]$/.exec(name);
        if (m) metadata[m[1]!] = value;
        const p = /^payment_intent_data\[metadata\]\[(.+)\]$/.exec(name);
        if (p) intentMetadata[p[1]!] = value;
      }
      const sessionId = id('cs');
      const session: FakeSession & { _intentMetadata: Record<string, string> } = {
        id: sessionId,
        object: 'checkout.session',
        amount_subtotal: amount * quantity,
        amount_total: amount * quantity,
        currency,
        client_reference_id: form.get('client_reference_id'),
        customer_email: form.get('customer_email'),
        metadata,
        mode: 'payment',
        payment_intent: null,
        payment_status: 'unpaid',
        status: 'open',
        success_url: form.get('success_url')!,
        cancel_url: form.get('cancel_url'),
        url: `https://checkout.stripe.com/c/pay/${sessionId}`,
        created: seconds(),
        expires_at: seconds() + 86_400,
        livemode: false,
        _intentMetadata: intentMetadata,
      };
      sessions.set(sessionId, session);
      const answer = JSON.stringify(publicSession(session));
      if (typeof key === 'string') idempotent.set(key, { body: request.body, answer });
      return send(res, { status: 200, headers: { 'content-type': 'application/json' }, body: answer });
    }
    const retrieve = /^\/v1\/checkout\/sessions\/([^/]+)$/.exec(request.path);
    if (request.method === 'GET' && retrieve) {
      const session = sessions.get(decodeURIComponent(retrieve[1]!));
      if (!session) return send(res, error(404, 'invalid_request_error', `No such checkout.session: '${retrieve[1]}'`, 'session'));
      return send(res, json(publicSession(session)));
    }
    return send(res, error(404, 'invalid_request_error', `Unrecognized request URL (${request.method}: ${request.path}).`));
  });

  function publicSession(session: FakeSession): FakeSession {
    const { _intentMetadata: _, ...rest } = session as FakeSession & { _intentMetadata?: unknown };
    return rest as FakeSession;
  }

  function sessionOf(sessionId: string): FakeSession & { _intentMetadata: Record<string, string> } {
    const session = sessions.get(sessionId);
    if (!session) throw new Error(`fake Stripe: no session ${sessionId}`);
    return session as FakeSession & { _intentMetadata: Record<string, string> };
  }

  function event(type: string, object: unknown): Stripe.Event {
    return {
      id: id('evt'),
      object: 'event',
      api_version: '2026-11-18.endive',
      created: seconds(),
      data: { object },
      livemode: false,
      pending_webhooks: 1,
      request: { id: null, idempotency_key: null },
      type,
    } as unknown as Stripe.Event;
  }

  function chargeOf(session: FakeSession & { _intentMetadata: Record<string, string> }): FakeCharge {
    if (!session.payment_intent) session.payment_intent = id('pi');
    let charge = [...charges.values()].find((c) => c.payment_intent === session.payment_intent);
    if (!charge) {
      charge = {
        id: id('ch'),
        object: 'charge',
        amount: session.amount_total,
        amount_refunded: 0,
        currency: session.currency,
        payment_intent: session.payment_intent,
        // Stripe copies the PaymentIntent's metadata (payment_intent_data.metadata) onto its charges.
        metadata: { ...session._intentMetadata },
        refunded: false,
        status: 'succeeded',
        paid: true,
        created: seconds(),
        livemode: false,
      };
      charges.set(charge.id, charge);
    }
    return charge;
  }

  return {
    url: server.url,
    requests,
    sessions,
    failNextCreates(n) {
      failCreates = n;
    },
    complete(sessionId, completion = {}) {
      const session = sessionOf(sessionId);
      session.status = 'complete';
      session.payment_status = completion.paymentStatus ?? 'paid';
      chargeOf(session);
      const view = { ...publicSession(session), amount_total: completion.amountTotal ?? session.amount_total, currency: completion.currency ?? session.currency };
      return event('checkout.session.completed', view);
    },
    asyncSucceeded(sessionId) {
      const session = sessionOf(sessionId);
      session.payment_status = 'paid';
      return event('checkout.session.async_payment_succeeded', publicSession(session));
    },
    asyncFailed(sessionId) {
      const session = sessionOf(sessionId);
      return event('checkout.session.async_payment_failed', publicSession(session));
    },
    expire(sessionId) {
      const session = sessionOf(sessionId);
      session.status = 'expired';
      session.url = null;
      return event('checkout.session.expired', publicSession(session));
    },
    refund(sessionId, amount) {
      const charge = chargeOf(sessionOf(sessionId));
      charge.amount_refunded += amount;
      charge.refunded = charge.amount_refunded === charge.amount;
      return event('charge.refunded', { ...charge });
    },
    dispute(sessionId, status, amount) {
      const charge = chargeOf(sessionOf(sessionId));
      return event(status === 'needs_response' ? 'charge.dispute.created' : 'charge.dispute.closed', {
        id: id('dp'),
        object: 'dispute',
        amount: amount ?? charge.amount,
        currency: charge.currency,
        charge: charge.id,
        payment_intent: charge.payment_intent,
        metadata: {},
        reason: 'fraudulent',
        status,
        created: seconds(),
        livemode: false,
      });
    },
    sign(stripeEvent, secret, atSeconds) {
      const body = JSON.stringify(stripeEvent, null, 2);
      return { body, signature: Stripe.webhooks.generateTestHeaderString({ payload: body, secret, timestamp: atSeconds }) };
    },
    close: () => server.close(),
  };
}
