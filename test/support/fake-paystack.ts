/**
 * A local Paystack API for tests, in its wire format: `Authorization: Bearer sk_…`, JSON bodies,
 * answers `{status, message, data}`; Initialize Transaction (`POST /transaction/initialize`, amount
 * in the minor unit as a string or number, a unique reference) and Verify Transaction
 * (`GET /transaction/verify/:reference`). The controls pay a transaction or refund it, returning the
 * webhook body Paystack would send; `sign` computes `x-paystack-signature` (hex HMAC-SHA512 of the
 * body under the secret key).
 */
import { createHmac } from 'node:crypto';
import { listen, recordRequest, send, type RecordedRequest } from './fake-upstream.ts';

interface FakeTransaction {
  id: number;
  reference: string;
  amount: number;
  currency: string;
  email: string;
  status: 'abandoned' | 'success' | 'failed';
  metadata: Record<string, unknown>;
  access_code: string;
  paid_at: string | null;
}

export interface FakePaystack {
  url: string;
  requests: RecordedRequest[];
  transactions: Map<string, FakeTransaction>;
  pay(reference: string, options?: { amount?: number; currency?: string }): { event: string; data: Record<string, unknown> };
  refund(reference: string, amount: number): { event: string; data: Record<string, unknown> };
  sign(body: string, secret?: string): string;
  close(): Promise<void>;
}

export async function startFakePaystack(options: { secretKey: string }): Promise<FakePaystack> {
  const requests: RecordedRequest[] = [];
  const transactions = new Map<string, FakeTransaction>();
  let nextId = 4_000_000_000;
  let nextRefund = 9_000_000;
  const json = (status: number, body: unknown) => ({ status, headers: { 'content-type': 'application/json; charset=utf-8' }, body: JSON.stringify(body) });

  const server = await listen(async (req, res) => {
    const request = await recordRequest(req);
    requests.push(request);
    if (req.headers.authorization !== `Bearer ${options.secretKey}`) {
      return send(res, json(401, { status: false, message: 'Invalid key' }));
    }
    if (request.method === 'POST' && request.path === '/transaction/initialize') {
      const body = JSON.parse(request.body || '{}') as Record<string, unknown>;
      const amount = Number(body.amount);
      if (typeof body.email !== 'string' || !Number.isSafeInteger(amount) || amount <= 0) {
        return send(res, json(400, { status: false, message: 'Invalid Amount Sent' }));
      }
      const reference = String(body.reference);
      if (transactions.has(reference)) return send(res, json(400, { status: false, message: 'Duplicate Transaction Reference' }));
      const accessCode = `acc_${reference.slice(0, 8)}`;
      transactions.set(reference, {
        id: nextId++,
        reference,
        amount,
        currency: String(body.currency ?? 'NGN'),
        email: body.email,
        status: 'abandoned',
        metadata: (body.metadata as Record<string, unknown>) ?? {},
        access_code: accessCode,
        paid_at: null,
      });
      return send(res, json(200, {
        status: true,
        message: 'Authorization URL created',
        data: { authorization_url: `https://checkout.paystack.com/${accessCode}`, access_code: accessCode, reference },
      }));
    }
    const verify = /^\/transaction\/verify\/(.+)$/.exec(request.path);
    if (request.method === 'GET' && verify) {
      const transaction = transactions.get(decodeURIComponent(verify[1]!));
      if (!transaction) return send(res, json(400, { status: false, message: 'Transaction reference not found' }));
      return send(res, json(200, { status: true, message: 'Verification successful', data: { ...transaction, domain: 'test', gateway_response: 'Successful' } }));
    }
    return send(res, json(404, { status: false, message: 'Not found' }));
  });

  return {
    url: server.url,
    requests,
    transactions,
    pay(reference, overrides = {}) {
      const transaction = transactions.get(reference)!;
      transaction.status = 'success';
      transaction.paid_at = new Date().toISOString();
      return {
        event: 'charge.success',
        data: {
          id: transaction.id,
          domain: 'test',
          status: 'success',
          reference,
          amount: overrides.amount ?? transaction.amount,
          currency: overrides.currency ?? transaction.currency,
          gateway_response: 'Successful',
          paid_at: transaction.paid_at,
          channel: 'card',
          metadata: transaction.metadata,
          customer: { email: transaction.email },
        },
      };
    },
    refund(reference, amount) {
      const transaction = transactions.get(reference)!;
      return {
        event: 'refund.processed',
        data: {
          id: nextRefund++,
          status: 'processed',
          transaction_reference: reference,
          amount,
          currency: transaction.currency,
          domain: 'test',
          customer: { email: transaction.email },
        },
      };
    },
    sign(body, secret = options.secretKey) {
      return createHmac('sha512', secret).update(body).digest('hex');
    },
    close: () => server.close(),
  };
}
