/**
 * A local seller speaking the SMS-Activate `handler_api.php` protocol: one URL, `api_key` +
 * `action` query (or form) parameters, plain-text token answers served as `text/html` the way PHP
 * does, JSON for the newer actions. Three dialects, each answering the way that seller's documents
 * and recorded answers show:
 *
 * - classic (SMS-Activate): every error is 200 with a text token; getNumberV2 answers JSON with a
 *   numeric `currency`; getActiveActivations may be capped (`activeListCap`): it shows at most N
 *   activations, whatever `start`/`limit` say, as the older list call did.
 * - hero (HeroSMS): errors are real 4xx/5xx with JSON `{title, details, info}` — except NO_NUMBERS,
 *   still 200 text — an unknown activation is 404 `{"title":"NOT_FOUND","details":"Activation Not
 *   Found"}`, an unknown action 422 BAD_ACTION, an early cancel 409 with `info.minActivationTime`;
 *   setStatus takes only 3/6/8; getActiveActivations pages with `start`/`limit` under `data`; V2
 *   times are RFC 3339; the balance has three decimals; no getFullSms.
 * - daisy (DaisySMS): MAX_PRICE_EXCEEDED and NO_MONEY instead of WRONG_MAX_PRICE and NO_BALANCE; at
 *   most 20 active rentals; the effective (surge) price in an `X-Price` header; no getNumberV2, no
 *   getActiveActivations; getPricesVerification (service → country) with each service's lifetime
 *   `ttl` in seconds, after which a number without SMS is cancelled; a cancel after the code answers
 *   ACCESS_READY; getExtraActivation sells a new activation of a delivered number (once per
 *   activation; BAD_ID otherwise), answering ASLEEP:<id>:<number>:<unix time> while the number is
 *   offline (`setAsleepUntil`).
 *
 * Controls script failures per action, deliver SMS, create activations out of band, forget them,
 * and count purchases.
 */
import type { IncomingMessage } from 'node:http';
import { systemClock, type Clock } from '../../src/clock.ts';
import {
  answerAfterEffect,
  answerFailure,
  FailureScript,
  listen,
  recordRequest,
  send,
  type FakeAnswer,
  type RecordedRequest,
  type ScriptedFailure,
} from './fake-upstream.ts';

export type SmsActivateAction =
  | 'getBalance'
  | 'getNumber'
  | 'getNumberV2'
  | 'getStatus'
  | 'getFullSms'
  | 'setStatus'
  | 'getActiveActivations'
  | 'getPrices'
  | 'getPricesVerification'
  | 'cancelActivation'
  | 'finishActivation'
  | 'getExtraActivation';

export type SmsActivateDialect = 'classic' | 'hero' | 'daisy';

export interface PriceOffer {
  cost: number;
  count: number;
  /** DaisySMS: seconds a number of this service lives. */
  ttl?: number;
}

export interface FakeSmsActivateOptions {
  clock?: Clock;
  apiKey?: string;
  dialect?: SmsActivateDialect;
  /** classic: false makes getNumberV2 answer BAD_ACTION, as older sellers do. */
  supportsNumberV2?: boolean;
  supportsFullSms?: boolean;
  /** Country id → service code → price (major units), stock and (daisy) lifetime. */
  prices?: Record<string, Record<string, PriceOffer>>;
  balance?: number;
  /** ISO 4217 numeric code of the account currency (840), stated in getNumberV2 answers and (hero) active-list entries. */
  currencyCode?: number;
  /** setStatus 8 answers EARLY_CANCEL_DENIED for this long after the purchase. */
  earlyCancelSeconds?: number;
  /** Lifetime of an activation (classic, hero); daisy uses each service's ttl. */
  activationLifetimeSeconds?: number;
  /** UTC offset of the zone-less timestamps written (SMS-Activate: Moscow, +180). */
  utcOffsetMinutes?: number;
  /** getNumberV2 includes activationEndTime (not every seller does). */
  statesEndTime?: boolean;
  /** classic: getActiveActivations shows at most this many, ignoring start/limit. */
  activeListCap?: number;
  /** daisy: the effective price is this share of the offer's cost (surge pricing downwards). */
  priceFactor?: number;
  /** classic, hero: the operators (`operator`) the seller has; any other answers WRONG_OPERATOR. Default: any is accepted. */
  operators?: string[];
  /** daisy: area codes (`areas`) that never have numbers. */
  emptyAreaCodes?: string[];
  /** classic (getNumberV2): the operator the seller says it assigned, whatever was asked (a seller that ignores the request). */
  assignedOperator?: string;
}

export interface FakeActivation {
  id: string;
  service: string;
  country: string;
  phone: string;
  cost: number;
  createdAt: Date;
  lifetimeMs: number;
  /** Out-of-band activations may leave their time off the list (a seller that does not say). */
  datedOnList: boolean;
  status: 'waiting' | 'received' | 'retry' | 'cancelled' | 'finished';
  sms: { code: string; text: string }[];
  /** What the purchase asked for: `operator` (classic, hero), `areas` / `carriers` (daisy). */
  operator?: string;
  areas?: string[];
  carriers?: string[];
  /** daisy: the activation this one is the extra activation of. */
  extraOf?: string;
  /** daisy: its one extra activation was sold. */
  extraTaken?: boolean;
}

export interface FakeSmsActivate {
  /** The handler URL, to pass as the adapter's baseUrl. */
  url: string;
  close(): Promise<void>;
  state: {
    activations: Map<string, FakeActivation>;
    /** Activations sold through getNumber/getNumberV2. */
    purchases: number;
    /** daisy: extra activations sold through getExtraActivation (ASLEEP ones included). */
    extras: number;
    balance: number;
    requests: RecordedRequest[];
  };
  controls: {
    failNext(action: SmsActivateAction, failure: ScriptedFailure, times?: number): void;
    /** Drops every scripted failure not yet used. */
    clearFailures(): void;
    deliverSms(activationId: string, sms: { code: string; text?: string }): void;
    queueNumbers(...numbers: string[]): void;
    setCount(country: string, service: string, count: number): void;
    /** An activation that exists upstream without a purchase through this API call path. */
    createActivation(activation: {
      service: string;
      country: string;
      createdAt?: Date;
      phone?: string;
      cost?: number;
      datedOnList?: boolean;
    }): FakeActivation;
    /** Lets the seller forget an activation (later calls answer as for an unknown one). */
    forget(activationId: string): void;
    /** The next activation sold gets this id again (a seller reusing ids); it replaces the old one here. */
    reuseIdOnNextPurchase(activationId: string): void;
    /** daisy: numbers are offline (getExtraActivation answers ASLEEP) until then; null: online. */
    setAsleepUntil(until: Date | null): void;
  };
}

const HANDLER = '/stubs/handler_api.php';
const HERO_ERROR_STATUS: Record<string, number> = {
  BAD_KEY: 401,
  NO_BALANCE: 402,
  BANNED: 403,
  CHANNELS_LIMIT: 403,
  SERVICE_NOT_AVAILABLE: 403,
  ACCOUNT_INACTIVE: 403,
  NOT_FOUND: 404,
  BAD_ACTION: 422,
  UNPROCESSABLE_ENTITY: 422,
  WRONG_MAX_PRICE: 400,
  BAD_STATUS: 400,
  BAD_SERVICE: 400,
  WRONG_COUNTRY: 400,
  EARLY_CANCEL_DENIED: 409,
  OTP_RECEIVED: 409,
  FREE_CANCELLATION_EXPIRED: 409,
  ACTIVATION_NOT_ACTIVE: 409,
};
const HERO_DETAILS: Record<string, string> = { BAD_KEY: 'Unauthorized', NOT_FOUND: 'Activation Not Found', BAD_ACTION: 'Method Not Found' };
const DAISY_MAX_ACTIVE = 20;

export async function startFakeSmsActivate(options: FakeSmsActivateOptions = {}): Promise<FakeSmsActivate> {
  const clock = options.clock ?? systemClock;
  const apiKey = options.apiKey ?? 'sa-test-key';
  const dialect = options.dialect ?? 'classic';
  const offset = options.utcOffsetMinutes ?? 180;
  const prices: Record<string, Record<string, PriceOffer>> = options.prices ?? {
    '187': { wa: { cost: 0.5, count: 120, ttl: 600 }, tg: { cost: 0.35, count: 40, ttl: 900 }, go: { cost: 0.2, count: 0, ttl: 300 } },
    '16': { wa: { cost: 0.9, count: 12, ttl: 600 } },
  };
  const script = new FailureScript<SmsActivateAction>();
  const numberQueue: string[] = [];
  let nextId = 700000001;
  let reusedId: string | undefined;
  let nextNumber = 1000;

  const state: FakeSmsActivate['state'] = { activations: new Map(), purchases: 0, extras: 0, balance: options.balance ?? 25, requests: [] };
  let asleepUntil: Date | null = null;

  // PHP answers plain text as text/html unless told otherwise; real sellers do the same.
  const text = (body: string, headers: Record<string, string> = {}): FakeAnswer => ({
    status: 200,
    headers: { 'Content-Type': 'text/html; charset=UTF-8', ...headers },
    body,
  });
  const json = (value: unknown): FakeAnswer => ({ status: 200, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(value) });
  const fail = (token: string, info?: Record<string, unknown>): FakeAnswer => {
    if (dialect !== 'hero' || token === 'NO_NUMBERS') return text(token);
    const title = token.split(':')[0]!;
    return {
      status: HERO_ERROR_STATUS[title] ?? 400,
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ title, details: HERO_DETAILS[title] ?? title, ...(info ? { info } : {}) }),
    };
  };
  /** An activation this seller does not know, in its own words. */
  const unknownActivation = () => fail(dialect === 'hero' ? 'NOT_FOUND' : 'NO_ACTIVATION');

  function sellerTime(at: Date): string {
    if (dialect === 'hero') return at.toISOString().replace(/\.\d{3}Z$/, '+00:00');
    const shifted = new Date(at.getTime() + offset * 60_000);
    const p = (n: number) => String(n).padStart(2, '0');
    return `${shifted.getUTCFullYear()}-${p(shifted.getUTCMonth() + 1)}-${p(shifted.getUTCDate())} ${p(shifted.getUTCHours())}:${p(shifted.getUTCMinutes())}:${p(shifted.getUTCSeconds())}`;
  }

  function statusOf(a: FakeActivation): FakeActivation['status'] {
    // Past its lifetime an activation without SMS is closed and refunded, as sellers do.
    if (a.status === 'waiting' && clock.now().getTime() >= a.createdAt.getTime() + a.lifetimeMs) {
      a.status = 'cancelled';
      state.balance = round(state.balance + a.cost);
    }
    return a.status;
  }

  function lifetimeMsFor(service: string, country: string): number {
    if (dialect === 'daisy') return (prices[country]?.[service]?.ttl ?? 600) * 1000;
    return (options.activationLifetimeSeconds ?? 1200) * 1000;
  }

  function newActivation(service: string, country: string, cost: number, createdAt: Date, phone?: string, datedOnList = true): FakeActivation {
    const id = reusedId ?? String(nextId++);
    reusedId = undefined;
    const number = phone ?? numberQueue.shift() ?? (country === '187' ? `1202555${nextNumber++}` : `4477009${String(nextNumber++).padStart(5, '0')}`);
    const lifetimeMs = lifetimeMsFor(service, country);
    const activation: FakeActivation = { id, service, country, phone: number, cost, createdAt, lifetimeMs, datedOnList, status: 'waiting', sms: [] };
    state.activations.set(id, activation);
    return activation;
  }

  const isActive = (a: FakeActivation) => ['waiting', 'received', 'retry'].includes(statusOf(a));

  function buy(params: URLSearchParams, v2: boolean): FakeAnswer {
    if (v2 && (dialect === 'daisy' || options.supportsNumberV2 === false)) return fail('BAD_ACTION');
    const service = params.get('service') ?? '';
    // DaisySMS sells US numbers only and its clients send no country.
    const country = dialect === 'daisy' ? '187' : (params.get('country') ?? '0');
    if (!(country in prices)) return fail(dialect === 'hero' ? 'WRONG_COUNTRY' : 'WRONG_COUNTRY_ID');
    const offer = prices[country]![service];
    if (!offer) return fail('BAD_SERVICE');
    if (offer.count <= 0) return fail('NO_NUMBERS');
    const maxPrice = params.get('maxPrice') ?? params.get('max_price');
    const price = dialect === 'daisy' ? round(offer.cost * (options.priceFactor ?? 1)) : offer.cost;
    if (maxPrice !== null && Number(maxPrice) < price) {
      if (dialect === 'daisy') return fail('MAX_PRICE_EXCEEDED');
      return dialect === 'hero' ? fail('WRONG_MAX_PRICE', { min: price }) : fail(`WRONG_MAX_PRICE:${price}`);
    }
    if (state.balance < price) return fail(dialect === 'daisy' ? 'NO_MONEY' : 'NO_BALANCE');
    if (dialect === 'daisy' && [...state.activations.values()].filter(isActive).length >= DAISY_MAX_ACTIVE) return fail('TOO_MANY_ACTIVE_RENTALS');
    const listParam = (name: string) => params.get(name)?.split(',').map((x) => x.trim()).filter((x) => x !== '');
    const operators = dialect === 'daisy' ? undefined : listParam('operator');
    if (operators && options.operators && operators.some((o) => !options.operators!.includes(o))) return fail('WRONG_OPERATOR');
    const areas = dialect === 'daisy' ? listParam('areas') : undefined;
    const carriers = dialect === 'daisy' ? listParam('carriers') : undefined;
    if (areas?.length && areas.every((a) => (options.emptyAreaCodes ?? []).includes(a))) return fail('NO_NUMBERS');

    const inArea = areas?.length ? `1${areas[0]}555${String(nextNumber++ % 10_000).padStart(4, '0')}` : undefined;
    const a = newActivation(service, country, price, clock.now(), numberQueue.length === 0 ? inArea : undefined);
    if (operators?.length) a.operator = operators.join(',');
    if (areas) a.areas = areas;
    if (carriers) a.carriers = carriers;
    offer.count -= 1;
    state.purchases += 1;
    state.balance = round(state.balance - price);
    if (!v2) return text(`ACCESS_NUMBER:${a.id}:${a.phone}`, dialect === 'daisy' ? { 'X-Price': price.toFixed(2) } : {});
    return json({
      activationId: dialect === 'hero' ? a.id : Number(a.id),
      phoneNumber: a.phone,
      activationCost: dialect === 'hero' ? a.cost : a.cost.toFixed(2),
      currency: options.currencyCode ?? 840,
      countryCode: country,
      canGetAnotherSms: dialect === 'hero' ? true : '1',
      activationTime: sellerTime(a.createdAt),
      ...(options.statesEndTime === false ? {} : { activationEndTime: sellerTime(new Date(a.createdAt.getTime() + a.lifetimeMs)) }),
      activationOperator: options.assignedOperator ?? operators?.[0] ?? 'any',
    });
  }

  /** daisy: another activation of a delivered number, charged as the offer costs now. */
  function extraActivation(params: URLSearchParams): FakeAnswer {
    if (dialect !== 'daisy') return fail('BAD_ACTION');
    const previous = state.activations.get(params.get('activationId') ?? '');
    if (!previous || previous.extraTaken || !['received', 'finished'].includes(statusOf(previous))) return text('BAD_ID');
    const price = round((prices[previous.country]?.[previous.service]?.cost ?? previous.cost) * (options.priceFactor ?? 1));
    if (state.balance < price) return fail('NO_MONEY');
    const a = newActivation(previous.service, previous.country, price, clock.now(), previous.phone);
    a.extraOf = previous.id;
    previous.extraTaken = true;
    state.extras += 1;
    state.balance = round(state.balance - price);
    if (asleepUntil && clock.now().getTime() < asleepUntil.getTime()) {
      return text(`ASLEEP:${a.id}:${a.phone}:${Math.ceil(asleepUntil.getTime() / 1000)}`);
    }
    return text(`ACCESS_NUMBER:${a.id}:${a.phone}`, { 'X-Price': price.toFixed(2) });
  }

  function activeList(params: URLSearchParams): FakeAnswer {
    if (dialect === 'daisy') return fail('BAD_ACTION');
    const all = [...state.activations.values()].filter(isActive);
    let page = all;
    if (dialect === 'hero') {
      const start = Number(params.get('start') ?? '0');
      const limit = Math.min(100, Number(params.get('limit') ?? '100'));
      page = all.slice(start, start + limit);
    } else if (options.activeListCap !== undefined) {
      page = all.slice(0, options.activeListCap);
    }
    if (dialect === 'classic' && page.length === 0) return json({ status: 'error', error: 'NO_ACTIVATIONS' });
    const entries = page.map((x) => ({
      activationId: x.id,
      serviceCode: x.service,
      phoneNumber: x.phone,
      activationCost: x.cost.toFixed(2),
      // HeroSMS documents the account currency on each entry.
      ...(dialect === 'hero' ? { currency: String(options.currencyCode ?? 840) } : {}),
      activationStatus: x.sms.length > 0 ? '2' : '4',
      smsCode: x.sms.length > 0 ? x.sms.map((m) => m.code) : null,
      smsText: x.sms.length > 0 ? JSON.stringify(x.sms.map((m) => m.text)) : null,
      activationTime: x.datedOnList ? sellerTime(x.createdAt) : null,
      countryCode: x.country,
      countryName: x.country === '187' ? 'USA' : 'United Kingdom',
      canGetAnotherSms: '1',
    }));
    return json(dialect === 'hero' ? { status: 'success', data: entries } : { status: 'success', activeActivations: entries });
  }

  function setStatus(a: FakeActivation | undefined, status: string | null): FakeAnswer {
    if (dialect === 'hero' && !['3', '6', '8'].includes(status ?? '')) return fail('BAD_STATUS');
    if (!a) return unknownActivation();
    const s = statusOf(a);
    switch (status) {
      case '8':
        if (s === 'cancelled') return dialect === 'hero' ? fail('ACTIVATION_NOT_ACTIVE') : text('ALREADY_CANCEL');
        if (s !== 'waiting') return dialect === 'hero' ? fail('OTP_RECEIVED') : text('ACCESS_READY');
        if (clock.now().getTime() < a.createdAt.getTime() + (options.earlyCancelSeconds ?? 0) * 1000) {
          return fail('EARLY_CANCEL_DENIED', { minActivationTime: options.earlyCancelSeconds });
        }
        a.status = 'cancelled';
        state.balance = round(state.balance + a.cost);
        return text('ACCESS_CANCEL');
      case '6':
        if (s === 'waiting' || s === 'cancelled') return fail('BAD_STATUS');
        a.status = 'finished';
        return text('ACCESS_ACTIVATION');
      case '3':
        if (s !== 'received') return fail('BAD_STATUS');
        a.status = 'retry';
        return text('ACCESS_RETRY_GET');
      case '1':
        return text('ACCESS_READY');
      default:
        return fail('BAD_STATUS');
    }
  }

  function handle(action: string, params: URLSearchParams): FakeAnswer {
    const a = state.activations.get(params.get('id') ?? '');
    switch (action) {
      case 'getBalance':
        return text(`ACCESS_BALANCE:${state.balance.toFixed(dialect === 'hero' ? 3 : 2)}`);
      case 'getNumber':
        return buy(params, false);
      case 'getNumberV2':
        return buy(params, true);
      case 'getStatus': {
        if (!a) return unknownActivation();
        const last = a.sms[a.sms.length - 1];
        switch (statusOf(a)) {
          case 'waiting':
            return text('STATUS_WAIT_CODE');
          case 'retry':
            return text(`STATUS_WAIT_RETRY:${last!.code}`);
          case 'cancelled':
            return text('STATUS_CANCEL');
          default:
            return text(`STATUS_OK:${last!.code}`);
        }
      }
      case 'getFullSms': {
        if (dialect !== 'classic' || options.supportsFullSms === false) return fail('BAD_ACTION');
        if (!a) return unknownActivation();
        const s = statusOf(a);
        if (s === 'waiting') return text('STATUS_WAIT_CODE');
        if (s === 'cancelled') return text('STATUS_CANCEL');
        return text(`FULL_SMS:${a.sms[a.sms.length - 1]!.text}`);
      }
      case 'setStatus':
        return setStatus(a, params.get('status'));
      case 'cancelActivation':
      case 'finishActivation': {
        if (dialect !== 'hero') return fail('BAD_ACTION');
        const answer = setStatus(a, action === 'cancelActivation' ? '8' : '6');
        return answer.status === 200 ? { status: 204 } : answer;
      }
      case 'getActiveActivations':
        return activeList(params);
      case 'getExtraActivation':
        return extraActivation(params);
      case 'getPrices': {
        const country = dialect === 'daisy' ? null : params.get('country');
        const wanted = country === null ? Object.keys(prices) : [country];
        const out: Record<string, Record<string, { cost: number; count: number }>> = {};
        for (const c of wanted) {
          const byService = prices[c];
          if (byService) out[c] = Object.fromEntries(Object.entries(byService).map(([code, o]) => [code, { cost: o.cost, count: o.count }]));
        }
        return json(out);
      }
      case 'getPricesVerification': {
        if (dialect !== 'daisy') return fail('BAD_ACTION');
        const out: Record<string, Record<string, { count: number; name: string; cost: string; repeatable: boolean; ttl: number }>> = {};
        for (const [country, byService] of Object.entries(prices)) {
          for (const [code, o] of Object.entries(byService)) {
            // More than 100 left is shown as 100.
            (out[code] ??= {})[country] = { count: Math.min(100, o.count), name: code, cost: o.cost.toFixed(2), repeatable: false, ttl: o.ttl ?? 600 };
          }
        }
        return json(out);
      }
      default:
        return fail('BAD_ACTION');
    }
  }

  const server = await listen(async (req: IncomingMessage, res) => {
    const recorded = await recordRequest(req);
    state.requests.push(recorded);
    if (recorded.path !== HANDLER) return send(res, { status: 404, headers: { 'Content-Type': 'text/html' }, body: '<html><body>Not Found</body></html>' });
    const params = new URLSearchParams(recorded.query);
    if (req.method === 'POST') for (const [k, v] of new URLSearchParams(recorded.body)) params.set(k, v);

    const action = params.get('action') ?? '';
    const failure = script.take(action as SmsActivateAction);
    if (failure && answerFailure(req, res, failure)) return;
    if (params.get('api_key') !== apiKey) return send(res, fail('BAD_KEY'));
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
      clearFailures: () => script.clear(),
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
        return newActivation(
          activation.service,
          activation.country,
          activation.cost ?? 0.5,
          activation.createdAt ?? clock.now(),
          activation.phone,
          activation.datedOnList ?? true,
        );
      },
      forget: (activationId) => void state.activations.delete(activationId),
      reuseIdOnNextPurchase: (activationId) => void (reusedId = activationId),
      setAsleepUntil: (until) => void (asleepUntil = until),
    },
  };
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
