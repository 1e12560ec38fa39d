/**
 * A local seller speaking the SMS-Activate `handler_api.php` protocol: one URL, `api_key` +
 * `action` query (or form) parameters, plain-text token answers served as `text/html` the way PHP
 * does, JSON for getNumberV2 / getActiveActivations / getPrices. Two dialects:
 *
 * - classic: every error is 200 with a text token (`NO_BALANCE`, `EARLY_CANCEL_DENIED`, …);
 * - hero (HeroSMS-style): errors are real 4xx with JSON `{title, details}` (except NO_NUMBERS, still
 *   200 text) and a successful setStatus answers 204 with an empty body.
 *
 * Controls script failures per action, deliver SMS, create activations out of band, and count
 * purchases.
 */
import type { IncomingMessage } from 'node:http';
import { systemClock, type Clock } from '../../src/clock.ts';
import {
  answerAfterEffect,
  answerFailure,
  FailureScript,
  listen,
  readBody,
  send,
  type FakeAnswer,
  type RecordedRequest,
  type ScriptedFailure,
} from './fake-textverified.ts';

export type SmsActivateAction =
  | 'getBalance'
  | 'getNumber'
  | 'getNumberV2'
  | 'getStatus'
  | 'getFullSms'
  | 'setStatus'
  | 'getActiveActivations'
  | 'getPrices';

export interface FakeSmsActivateOptions {
  clock?: Clock;
  apiKey?: string;
  dialect?: 'classic' | 'hero';
  /** false: getNumberV2 answers BAD_ACTION, as older sellers do. */
  supportsNumberV2?: boolean;
  supportsFullSms?: boolean;
  /** Country id → service code → price (major units) and stock. */
  prices?: Record<string, Record<string, { cost: number; count: number }>>;
  balance?: number;
  /** setStatus 8 answers EARLY_CANCEL_DENIED for this long after the purchase. */
  earlyCancelSeconds?: number;
  activationLifetimeSeconds?: number;
  /** UTC offset of the zone-less timestamps written (SMS-Activate: Moscow, +180). */
  utcOffsetMinutes?: number;
  /** getNumberV2 includes activationEndTime (not every seller does). */
  statesEndTime?: boolean;
}

export interface FakeActivation {
  id: string;
  service: string;
  country: string;
  phone: string;
  cost: number;
  createdAt: Date;
  status: 'waiting' | 'received' | 'retry' | 'cancelled' | 'finished';
  sms: { code: string; text: string }[];
}

export interface FakeSmsActivate {
  /** The handler URL, to pass as the adapter's baseUrl. */
  url: string;
  close(): Promise<void>;
  state: {
    activations: Map<string, FakeActivation>;
    /** Activations sold through getNumber/getNumberV2. */
    purchases: number;
    balance: number;
    requests: RecordedRequest[];
  };
  controls: {
    failNext(action: SmsActivateAction, failure: ScriptedFailure, times?: number): void;
    deliverSms(activationId: string, sms: { code: string; text?: string }): void;
    queueNumbers(...numbers: string[]): void;
    setCount(country: string, service: string, count: number): void;
    /** An activation that exists upstream without a purchase through this API call path. */
    createActivation(activation: { service: string; country: string; createdAt?: Date; phone?: string; cost?: number }): FakeActivation;
    /** Lets the seller forget an activation (later calls answer NO_ACTIVATION). */
    forget(activationId: string): void;
  };
}

const HANDLER = '/stubs/handler_api.php';

export async function startFakeSmsActivate(options: FakeSmsActivateOptions = {}): Promise<FakeSmsActivate> {
  const clock = options.clock ?? systemClock;
  const apiKey = options.apiKey ?? 'sa-test-key';
  const hero = options.dialect === 'hero';
  const lifetimeMs = (options.activationLifetimeSeconds ?? 1200) * 1000;
  const offset = options.utcOffsetMinutes ?? 180;
  const prices = options.prices ?? {
    '187': { wa: { cost: 0.5, count: 120 }, tg: { cost: 0.35, count: 40 }, go: { cost: 0.2, count: 0 } },
    '16': { wa: { cost: 0.9, count: 12 } },
  };
  const script = new FailureScript<SmsActivateAction>();
  const numberQueue: string[] = [];
  let nextId = 700000001;
  let nextNumber = 1000;

  const state: FakeSmsActivate['state'] = { activations: new Map(), purchases: 0, balance: options.balance ?? 25, requests: [] };

  // PHP answers plain text as text/html unless told otherwise; real sellers do the same.
  const text = (body: string): FakeAnswer => ({ status: 200, headers: { 'Content-Type': 'text/html; charset=UTF-8' }, body });
  const json = (value: unknown): FakeAnswer => ({ status: 200, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(value) });
  const fail = (token: string, heroStatus: number): FakeAnswer => {
    if (!hero || token === 'NO_NUMBERS') return text(token);
    return { status: heroStatus, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ title: token, details: `${token} (fake)` }) };
  };
  const done = (token: string): FakeAnswer => (hero ? { status: 204 } : text(token));

  function sellerTime(at: Date): string {
    const shifted = new Date(at.getTime() + offset * 60_000);
    const p = (n: number) => String(n).padStart(2, '0');
    return `${shifted.getUTCFullYear()}-${p(shifted.getUTCMonth() + 1)}-${p(shifted.getUTCDate())} ${p(shifted.getUTCHours())}:${p(shifted.getUTCMinutes())}:${p(shifted.getUTCSeconds())}`;
  }

  function statusOf(a: FakeActivation): FakeActivation['status'] {
    // Past its lifetime an activation without SMS is closed and refunded, as sellers do.
    if (a.status === 'waiting' && clock.now().getTime() >= a.createdAt.getTime() + lifetimeMs) {
      a.status = 'cancelled';
      state.balance = round(state.balance + a.cost);
    }
    return a.status;
  }

  function newActivation(service: string, country: string, cost: number, createdAt: Date, phone?: string): FakeActivation {
    const id = String(nextId++);
    const number = phone ?? numberQueue.shift() ?? (country === '187' ? `1202555${nextNumber++}` : `4477009${String(nextNumber++).padStart(5, '0')}`);
    const activation: FakeActivation = { id, service, country, phone: number, cost, createdAt, status: 'waiting', sms: [] };
    state.activations.set(id, activation);
    return activation;
  }

  function buy(params: URLSearchParams, v2: boolean): FakeAnswer {
    if (v2 && options.supportsNumberV2 === false) return fail('BAD_ACTION', 400);
    const service = params.get('service') ?? '';
    const country = params.get('country') ?? '0';
    if (!(country in prices)) return fail('WRONG_COUNTRY_ID', 400);
    const offer = prices[country]?.[service];
    if (!offer) return fail('BAD_SERVICE', 400);
    if (offer.count <= 0) return fail('NO_NUMBERS', 404);
    const maxPrice = params.get('maxPrice');
    if (maxPrice !== null && Number(maxPrice) < offer.cost) return fail(`WRONG_MAX_PRICE:${offer.cost}`, 400);
    if (state.balance < offer.cost) return fail('NO_BALANCE', 402);

    const a = newActivation(service, country, offer.cost, clock.now());
    offer.count -= 1;
    state.purchases += 1;
    state.balance = round(state.balance - offer.cost);
    if (!v2) return text(`ACCESS_NUMBER:${a.id}:${a.phone}`);
    return json({
      activationId: Number(a.id),
      phoneNumber: a.phone,
      activationCost: a.cost.toFixed(2),
      currency: 840,
      countryCode: country,
      canGetAnotherSms: '1',
      activationTime: sellerTime(a.createdAt),
      ...(options.statesEndTime === false ? {} : { activationEndTime: sellerTime(new Date(a.createdAt.getTime() + lifetimeMs)) }),
      activationOperator: 'any',
    });
  }

  function handle(action: string, params: URLSearchParams): FakeAnswer {
    const id = params.get('id') ?? '';
    const a = state.activations.get(id);
    switch (action) {
      case 'getBalance':
        return text(`ACCESS_BALANCE:${state.balance.toFixed(2)}`);
      case 'getNumber':
        return buy(params, false);
      case 'getNumberV2':
        return buy(params, true);
      case 'getStatus': {
        if (!a) return fail('NO_ACTIVATION', 404);
        const last = a.sms[a.sms.length - 1]!;
        switch (statusOf(a)) {
          case 'waiting':
            return text('STATUS_WAIT_CODE');
          case 'retry':
            return text(`STATUS_WAIT_RETRY:${last.code}`);
          case 'cancelled':
            return text('STATUS_CANCEL');
          default:
            return text(`STATUS_OK:${last.code}`);
        }
      }
      case 'getFullSms': {
        if (options.supportsFullSms === false) return fail('BAD_ACTION', 400);
        if (!a) return fail('NO_ACTIVATION', 404);
        const s = statusOf(a);
        if (s === 'waiting') return text('STATUS_WAIT_CODE');
        if (s === 'cancelled') return text('STATUS_CANCEL');
        return text(`FULL_SMS:${a.sms[a.sms.length - 1]!.text}`);
      }
      case 'setStatus': {
        if (!a) return fail('NO_ACTIVATION', 404);
        const s = statusOf(a);
        switch (params.get('status')) {
          case '8':
            if (s === 'cancelled') return fail('ALREADY_CANCEL', 400);
            if (s !== 'waiting') return hero ? fail('OTP_RECEIVED', 400) : text('ACCESS_READY');
            if (clock.now().getTime() < a.createdAt.getTime() + (options.earlyCancelSeconds ?? 0) * 1000) return fail('EARLY_CANCEL_DENIED', 400);
            a.status = 'cancelled';
            state.balance = round(state.balance + a.cost);
            return done('ACCESS_CANCEL');
          case '6':
            if (s === 'waiting' || s === 'cancelled') return fail('BAD_STATUS', 400);
            a.status = 'finished';
            return done('ACCESS_ACTIVATION');
          case '3':
            if (s !== 'received') return fail('BAD_STATUS', 400);
            a.status = 'retry';
            return text('ACCESS_RETRY_GET');
          case '1':
            return text('ACCESS_READY');
          default:
            return fail('BAD_STATUS', 400);
        }
      }
      case 'getActiveActivations': {
        const active = [...state.activations.values()].filter((x) => {
          const s = statusOf(x);
          return s === 'waiting' || s === 'received' || s === 'retry';
        });
        if (active.length === 0) return json({ status: 'error', error: 'NO_ACTIVATIONS' });
        return json({
          status: 'success',
          activeActivations: active.map((x) => ({
            activationId: x.id,
            serviceCode: x.service,
            phoneNumber: x.phone,
            activationCost: x.cost.toFixed(2),
            activationStatus: x.sms.length > 0 ? '2' : '1',
            smsCode: x.sms.length > 0 ? x.sms.map((m) => m.code) : null,
            smsText: x.sms.length > 0 ? JSON.stringify(x.sms.map((m) => m.text)) : null,
            activationTime: sellerTime(x.createdAt),
            discount: '0.00',
            repeated: '0',
            countryCode: x.country,
            countryName: x.country === '187' ? 'USA' : 'United Kingdom',
            canGetAnotherSms: '1',
          })),
        });
      }
      case 'getPrices': {
        const country = params.get('country');
        const wanted = country === null ? Object.keys(prices) : [country];
        const out: Record<string, Record<string, { cost: number; count: number }>> = {};
        for (const c of wanted) if (prices[c]) out[c] = prices[c];
        return json(out);
      }
      default:
        return fail('BAD_ACTION', 400);
    }
  }

  const server = await listen(async (req: IncomingMessage, res) => {
    const url = new URL(req.url ?? '/', 'http://fake');
    const body = await readBody(req);
    const recorded: RecordedRequest = { method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, headers: req.headers, body };
    state.requests.push(recorded);
    if (url.pathname !== HANDLER) return send(res, { status: 404, headers: { 'Content-Type': 'text/html' }, body: '<html><body>Not Found</body></html>' });
    const params = new URLSearchParams(url.searchParams);
    if (req.method === 'POST') for (const [k, v] of new URLSearchParams(body)) params.set(k, v);

    const action = params.get('action') ?? '';
    const failure = script.take(action as SmsActivateAction);
    if (failure && answerFailure(req, res, failure)) return;
    if (params.get('api_key') !== apiKey) return send(res, fail('BAD_KEY', 401));
    const answer = handle(action, params);
    if (answerAfterEffect(req, failure)) return;
    send(res, answer);
  });

  return {
    url: `${server.url}${HANDLER}`,
    close: server.close,
    state,
    controls: {
      failNext: (action, failure, times) => script.add(action, failure, times),
      deliverSms(activationId, sms) {
        const a = state.activations.get(activationId);
        if (!a) throw new Error(`fake sms-activate: no activation ${activationId}`);
        a.sms.push({ code: sms.code, text: sms.text ?? `Your code is ${sms.code}` });
        if (statusOf(a) === 'waiting' || a.status === 'retry') a.status = 'received';
      },
      queueNumbers: (...numbers) => void numberQueue.push(...numbers),
      setCount(country, service, count) {
        const offer = prices[country]?.[service];
        if (!offer) throw new Error(`fake sms-activate: no offer ${country}/${service}`);
        offer.count = count;
      },
      createActivation(activation) {
        return newActivation(activation.service, activation.country, activation.cost ?? 0.5, activation.createdAt ?? clock.now(), activation.phone);
      },
      forget: (activationId) => void state.activations.delete(activationId),
    },
  };
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
