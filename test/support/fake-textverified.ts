/**
 * A local TextVerified API v2 for tests, as the published API document describes it: the documented
 * paths, headers, JSON bodies and status codes; request bodies checked against the document's
 * required fields (unknown fields refused); the SMS list filtered by every parameter given, the way
 * the document says, and so the call list (`GET /calls`, the document's `Call`: a recording, no
 * transcription); webhook payloads exactly in the documented shape (no SMS id). In-memory state
 * and controls script failures (429, 5xx, HTML pages, hangs, a connection cut after the order was
 * created), deliver SMS, forget orders, sell elsewhere and send signed webhooks.
 */
import { createHmac, randomUUID } from 'node:crypto';
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

/** The signature header value for a body, as TextVerified computes it. */
export function signWebhook(rawBody: string | Buffer, secret: string): string {
  const digest = createHmac('sha512', secret).update(typeof rawBody === 'string' ? Buffer.from(rawBody, 'utf8') : rawBody).digest('base64');
  return `HMAC-SHA512=${digest}`;
}

// ---- TextVerified ---------------------------------------------------------------------------------

export type TextVerifiedRoute = 'auth' | 'account' | 'services' | 'pricing' | 'create' | 'list' | 'details' | 'cancel' | 'report' | 'reuse' | 'sms' | 'calls' | 'area-codes';

export interface FakeTextVerifiedOptions {
  clock?: Clock;
  apiUsername?: string;
  apiKey?: string;
  tokenLifetimeSeconds?: number;
  verificationLifetimeSeconds?: number;
  /** serviceName → price in dollars. */
  prices?: Record<string, number>;
  balance?: number;
  /** Cancel is refused (canCancel=false) for this long after creation. */
  cancelableAfterSeconds?: number;
  maxUnfinished?: number;
  pageSize?: number;
  webhookSecret?: string;
  /** The account answer leaves out `currentBalance` (optional in the API document). */
  omitBalance?: boolean;
  /** Services listed as `smsAndVoiceCombo` (bought with capability `voice` too). */
  voiceServices?: string[];
  /** `GET /area-codes`: what the API document's AreaCode items carry. */
  areaCodes?: { areaCode: string; state: string }[];
  /** Area codes that never have numbers (create answers 400 Unavailable). */
  emptyAreaCodes?: string[];
  /** Dollars added to the price when area codes / carriers are chosen, or for voice. */
  surcharges?: { areaCode?: number; carrier?: number; voice?: number };
  /**
   * How long after its code a verification may be reused (default 30 s: the document's mock
   * `test_success`, "successful reuse within the 30-second reuse window"; the FAQ says 2 minutes).
   */
  reuseWindowSeconds?: number;
  /**
   * The scenario for verifications bought with capability `voice`: the service calls this many
   * seconds after the purchase (the call is listed from then on), or `never`. Default: no call
   * unless a test delivers one (`controls.deliverCall`).
   */
  voiceCall?: { afterSeconds: number; recordingUri?: string | null } | 'never';
}

export interface FakeVerification {
  id: string;
  /** Ten digits, as TextVerified writes US numbers. */
  number: string;
  serviceName: string;
  createdAt: Date;
  endsAt: Date;
  state: string;
  totalCost: number;
  capability?: string;
  areaCodeSelectOption?: string[];
  carrierSelectOption?: string[];
  /** When its first SMS came (the reuse window runs from here). */
  completedAt?: Date;
  /** Its reuse was taken (one reuse per completed verification). */
  reuseTaken?: boolean;
  /** The verification this one was created from by a reuse action. */
  reusedFrom?: string;
}

export interface FakeSms {
  id: string;
  /** As TextVerified writes US numbers: ten digits. */
  to: string;
  from: string;
  createdAt: Date;
  smsContent: string;
  parsedCode: string | null;
  reservationId: string | null;
  reservationType: 'verification' | null;
}

/** A call as the document's `Call`: id, from, to, createdAt, recordingUri — nothing else. */
export interface FakeCall {
  id: string;
  /** As TextVerified writes US numbers: ten digits. */
  to: string;
  from: string | null;
  createdAt: Date;
  recordingUri: string | null;
  reservationId: string | null;
  reservationType: 'verification' | null;
}

/** `v2.sms.received` data exactly as the document's SmsWebhookEvent: no SMS id, no extra field. */
export interface SmsWebhookData {
  from: string | null;
  to: string;
  createdAt: string;
  smsContent: string | null;
  parsedCode: string | null;
  encrypted: boolean;
  reservationId: string | null;
}

type IdempotencyRecord = { state: 'running' } | { state: 'expired' } | { state: 'done'; verificationId: string };

export interface FakeTextVerified {
  url: string;
  close(): Promise<void>;
  state: {
    verifications: Map<string, FakeVerification>;
    sms: FakeSms[];
    calls: FakeCall[];
    idempotency: Map<string, IdempotencyRecord>;
    /** Verifications actually created (sold). */
    purchases: number;
    /** Verifications created by a reuse action. */
    reuses: number;
    authRequests: number;
    balance: number;
    requests: RecordedRequest[];
  };
  controls: {
    failNext(route: TextVerifiedRoute, failure: ScriptedFailure, times?: number): void;
    /** Drops every scripted failure not yet used. */
    clearFailures(): void;
    /** An SMS to a verification's number, assigned to it. */
    deliverSms(verificationId: string, sms: { text: string; code?: string | null; at?: Date }): FakeSms;
    /** A call to a verification's number, assigned to it (by default with a recording). */
    deliverCall(verificationId: string, call?: { at?: Date; from?: string | null; recordingUri?: string | null }): FakeCall;
    /** An SMS to a bare number, e.g. one a previous holder of a recycled number received. */
    smsToNumber(number: string, sms: { text: string; code?: string | null; at: Date; reservationId?: string | null }): FakeSms;
    /** Numbers handed out by the next purchases, in order (ten digits). */
    queueNumbers(...numbers: string[]): void;
    /**
     * TextVerified's decision on a reported verification, made later on its side: `refunded` puts
     * the cost back on the account (state verificationRefunded), `declined` leaves it charged
     * (back to verificationCompleted).
     */
    settleReport(verificationId: string, outcome: 'refunded' | 'declined'): void;
    setStock(serviceName: string, available: number): void;
    setIdempotencyState(key: string, state: 'running' | 'expired'): void;
    /** Invalidates every issued token (the next authorised call gets 401). */
    revokeTokens(): void;
    /** Makes create answers point at another origin (to check the client refuses to follow). */
    setLinkOrigin(origin: string | null): void;
    /** The upstream forgets a verification: it answers 404 about it from now on. */
    forget(verificationId: string): void;
    /** A verification bought outside our purchase path (an orphan for reconciliation). */
    sellElsewhere(verification: { serviceName: string; createdAt?: Date }): FakeVerification;
    /** The documented `v2.sms.received` data for an SMS of the fake's. */
    smsWebhookData(sms: FakeSms): SmsWebhookData;
    /** POSTs a signed webhook envelope to a receiver. */
    sendWebhook(
      target: string,
      envelope: { event: string; data: unknown; id?: string; attempt?: number; occurredAt?: Date; idempotencyKey?: string },
      options?: { secret?: string; signature?: string },
    ): Promise<{ status: number; body: string; rawBody: string; signature: string }>;
  };
}

const NEW_VERIFICATION_FIELDS = new Set(['areaCodeSelectOption', 'carrierSelectOption', 'serviceName', 'capability', 'serviceNotListedName', 'maxPrice']);
const PRICE_CHECK_FIELDS = new Set(['serviceName', 'areaCode', 'carrier', 'numberType', 'capability']);
const CAPABILITIES = new Set(['sms', 'voice', 'smsAndVoiceCombo']);
const NUMBER_TYPES = new Set(['mobile', 'voip', 'landline']);

const API = '/api/pub/v2';

export async function startFakeTextVerified(options: FakeTextVerifiedOptions = {}): Promise<FakeTextVerified> {
  const clock = options.clock ?? systemClock;
  const apiUsername = options.apiUsername ?? 'operator@example.com';
  const apiKey = options.apiKey ?? 'tv-test-key';
  const prices: Record<string, number> = options.prices ?? { whatsapp: 1.25, telegram: 0.75, google: 0.5 };
  const pageSize = options.pageSize ?? 25;
  const script = new FailureScript<TextVerifiedRoute>();
  const tokens = new Map<string, Date>();
  const stock = new Map<string, number>();
  const numberQueue: string[] = [];
  let nextNumber = 2025550100;
  let nextId = 1;
  let nextSmsId = 1;
  let nextCallId = 1;
  let linkOrigin: string | null = null;

  const state: FakeTextVerified['state'] = {
    verifications: new Map(),
    sms: [],
    calls: [],
    idempotency: new Map(),
    purchases: 0,
    reuses: 0,
    authRequests: 0,
    balance: options.balance ?? 100,
    requests: [],
  };

  const json = (status: number, value: unknown, headers: Record<string, string> = {}): FakeAnswer => ({
    status,
    headers: { 'Content-Type': 'application/json; charset=utf-8', ...headers },
    body: JSON.stringify(value),
  });
  const error = (status: number, errorCode: string, errorDescription: string) => json(status, { errorCode, errorDescription });
  const link = (base: string, path: string, method = 'GET') => ({ method, href: `${base}${API}${path}` });

  function stateOf(v: FakeVerification): string {
    if (v.state === 'verificationPending' && clock.now().getTime() >= v.endsAt.getTime()) v.state = 'verificationTimedOut';
    return v.state;
  }

  function smsOf(v: FakeVerification): FakeSms[] {
    return state.sms.filter((s) => s.reservationId === v.id);
  }

  function callsOf(v: FakeVerification): FakeCall[] {
    return state.calls.filter((c) => c.reservationId === v.id);
  }

  function addCall(v: FakeVerification, call: { at?: Date; from?: string | null; recordingUri?: string | null }): FakeCall {
    const id = `call_${nextCallId++}`;
    const record: FakeCall = {
      id,
      to: v.number,
      from: call.from === undefined ? '8005550199' : call.from,
      createdAt: call.at ?? clock.now(),
      recordingUri: call.recordingUri === undefined ? `https://recordings.example.test/${id}.mp3` : call.recordingUri,
      reservationId: v.id,
      reservationType: 'verification',
    };
    state.calls.push(record);
    if (v.state === 'verificationPending') v.state = 'verificationCompleted';
    return record;
  }

  /** The `voiceCall` scenario: a voice verification still pending past its call time has been called. */
  function scheduledCalls(): void {
    const scenario = options.voiceCall;
    if (!scenario || scenario === 'never') return;
    for (const v of state.verifications.values()) {
      if (!v.capability || v.capability === 'sms' || v.state !== 'verificationPending' || callsOf(v).length > 0) continue;
      const at = new Date(v.createdAt.getTime() + scenario.afterSeconds * 1000);
      if (clock.now().getTime() < at.getTime() || at.getTime() >= v.endsAt.getTime()) continue;
      addCall(v, { at, ...(scenario.recordingUri !== undefined ? { recordingUri: scenario.recordingUri } : {}) });
    }
  }

  function canCancel(v: FakeVerification): boolean {
    const after = (options.cancelableAfterSeconds ?? 0) * 1000;
    return (
      stateOf(v) === 'verificationPending' && smsOf(v).length === 0 && callsOf(v).length === 0 && clock.now().getTime() >= v.createdAt.getTime() + after
    );
  }

  /** Until when the verification may be reused: a while after its code, once; null otherwise. */
  function reusableUntil(v: FakeVerification): Date | null {
    const s = stateOf(v);
    if ((s !== 'verificationCompleted' && s !== 'verificationReused') || !v.completedAt || v.reuseTaken) return null;
    const until = new Date(v.completedAt.getTime() + (options.reuseWindowSeconds ?? 30) * 1000);
    return clock.now().getTime() < until.getTime() ? until : null;
  }

  /**
   * The reuse action: a new verification on the same number, pending until its own SMS (then
   * verificationReused, "created by a reuse action, with SMS results"), charged nothing.
   */
  function reuse(base: string, v: FakeVerification): FakeAnswer {
    if (reusableUntil(v) === null) return error(400, 'ReuseNotAllowed', 'This verification cannot be reused.');
    v.reuseTaken = true;
    const now = clock.now();
    const again: FakeVerification = {
      id: `lr_${String(nextId++).padStart(6, '0')}`,
      number: v.number,
      serviceName: v.serviceName,
      createdAt: now,
      endsAt: new Date(now.getTime() + (options.verificationLifetimeSeconds ?? 900) * 1000),
      state: 'verificationPending',
      totalCost: 0,
      reusedFrom: v.id,
    };
    state.verifications.set(again.id, again);
    state.reuses += 1;
    return created(base, again.id);
  }

  function expanded(base: string, v: FakeVerification) {
    const s = stateOf(v);
    return {
      id: v.id,
      number: v.number,
      createdAt: v.createdAt.toISOString(),
      endsAt: v.endsAt.toISOString(),
      state: s,
      totalCost: v.totalCost,
      serviceName: v.serviceName,
      sms: link(base, `/sms?reservationId=${v.id}&reservationType=verification`),
      calls: link(base, `/calls?reservationId=${v.id}&reservationType=verification`),
      sale: link(base, `/sales/sale_${v.id}`),
      cancel: { canCancel: canCancel(v), link: link(base, `/verifications/${v.id}/cancel`, 'POST') },
      report: { canReport: s === 'verificationPending' || s === 'verificationCompleted', link: link(base, `/verifications/${v.id}/report`, 'POST') },
      reuse: { reusableUntil: reusableUntil(v)?.toISOString() ?? null, link: link(base, `/verifications/${v.id}/reuse`, 'POST') },
      reactivate: { canReactivate: false, link: link(base, `/verifications/${v.id}/reactivate`, 'POST') },
    };
  }

  function page<T>(base: string, path: string, query: URLSearchParams, items: T[]) {
    const current = Math.max(1, Number(query.get('page') ?? '1') || 1);
    const start = (current - 1) * pageSize;
    const data = items.slice(start, start + pageSize);
    const at = (n: number) => {
      const q = new URLSearchParams(query);
      q.set('page', String(n));
      return { method: 'GET', href: `${base}${API}${path}?${q.toString()}` };
    };
    const hasNext = start + pageSize < items.length;
    return {
      data,
      hasNext,
      hasPrevious: current > 1,
      count: items.length,
      links: { current: at(current), previous: current > 1 ? at(current - 1) : null, next: hasNext ? at(current + 1) : null },
    };
  }

  /** The document's required fields and nothing else (its schemas say additionalProperties: false). */
  function invalidBody(body: Record<string, unknown>, allowed: Set<string>, required: string[]): FakeAnswer | null {
    const unknown = Object.keys(body).filter((k) => !allowed.has(k));
    if (unknown.length > 0) return error(400, 'InvalidRequest', `Unknown field(s): ${unknown.join(', ')}.`);
    const missing = required.filter((k) => body[k] === undefined || body[k] === null);
    if (missing.length > 0) return error(400, 'InvalidRequest', `Missing required field(s): ${missing.join(', ')}.`);
    return null;
  }

  function surchargeFor(choice: { areaCode: boolean; carrier: boolean; voice: boolean }): number {
    const s = options.surcharges ?? {};
    return (choice.areaCode ? (s.areaCode ?? 0) : 0) + (choice.carrier ? (s.carrier ?? 0) : 0) + (choice.voice ? (s.voice ?? 0) : 0);
  }

  function sell(serviceName: string, createdAt: Date, choice: { price?: number; areaCodes?: string[]; carriers?: string[]; capability?: string } = {}): FakeVerification {
    const price = choice.price ?? prices[serviceName] ?? 1;
    // A number in the first area code asked for, unless the test queued another one.
    const inArea = choice.areaCodes?.length ? `${choice.areaCodes[0]}555${String(nextNumber++ % 10_000).padStart(4, '0')}` : undefined;
    const v: FakeVerification = {
      id: `lr_${String(nextId++).padStart(6, '0')}`,
      number: numberQueue.shift() ?? inArea ?? String(nextNumber++),
      ...(choice.capability ? { capability: choice.capability } : {}),
      ...(choice.areaCodes ? { areaCodeSelectOption: choice.areaCodes } : {}),
      ...(choice.carriers ? { carrierSelectOption: choice.carriers } : {}),
      serviceName,
      createdAt,
      endsAt: new Date(createdAt.getTime() + (options.verificationLifetimeSeconds ?? 900) * 1000),
      state: 'verificationPending',
      totalCost: price,
    };
    state.verifications.set(v.id, v);
    state.purchases += 1;
    state.balance = Math.round((state.balance - price) * 100) / 100;
    return v;
  }

  function createVerification(base: string, body: Record<string, unknown>, key: string | undefined): FakeAnswer {
    const invalid = invalidBody(body, NEW_VERIFICATION_FIELDS, ['serviceName', 'capability']);
    if (invalid) return invalid;
    if (typeof body.capability !== 'string' || !CAPABILITIES.has(body.capability)) return error(400, 'InvalidRequest', 'Unknown capability.');
    if (key !== undefined) {
      const record = state.idempotency.get(key);
      if (record?.state === 'running') return error(409, 'IdempotencyConflict', 'A request with this idempotency key is still being processed.');
      if (record?.state === 'expired') return error(400, 'IdempotencyKeyExpired', 'The request with this idempotency key expired without completing. Start over with a new key.');
      if (record?.state === 'done') return created(base, record.verificationId);
    }
    const serviceName = body.serviceName;
    if (typeof serviceName !== 'string' || !(serviceName in prices)) return error(400, 'InvalidServiceName', 'Unknown service.');
    const voice = body.capability !== 'sms';
    if (voice && !(options.voiceServices ?? []).includes(serviceName)) return error(400, 'InvalidCapability', 'Unsupported capability.');
    const list = (field: string): string[] | undefined | 'invalid' => {
      const value = body[field];
      if (value === undefined || value === null) return undefined;
      if (!Array.isArray(value) || value.some((x) => typeof x !== 'string')) return 'invalid';
      return value as string[];
    };
    const areaCodes = list('areaCodeSelectOption');
    const carriers = list('carrierSelectOption');
    if (areaCodes === 'invalid' || carriers === 'invalid') return error(400, 'InvalidRequest', 'Select options must be arrays of strings.');
    const price =
      Math.round((prices[serviceName]! + surchargeFor({ areaCode: !!areaCodes?.length, carrier: !!carriers?.length, voice })) * 100) / 100;
    if ((stock.get(serviceName) ?? 1) <= 0) return error(400, 'Unavailable', 'No numbers are available for this request.');
    if (areaCodes?.length && areaCodes.every((a) => (options.emptyAreaCodes ?? []).includes(a))) {
      return error(400, 'Unavailable', 'No numbers are available for this request.');
    }
    if (typeof body.maxPrice === 'number' && body.maxPrice < price) return error(400, 'PricingFailure', `Price ${price} is above maxPrice.`);
    if (state.balance < price) return error(400, 'InsufficientBalance', 'Insufficient balance.');
    const unfinished = [...state.verifications.values()].filter((v) => stateOf(v) === 'verificationPending').length;
    if (unfinished >= (options.maxUnfinished ?? 10)) return error(400, 'TooManyUnfinishedVerifications', 'Too many pending verifications.');

    const v = sell(serviceName, clock.now(), {
      price,
      ...(areaCodes ? { areaCodes } : {}),
      ...(carriers ? { carriers } : {}),
      capability: body.capability as string,
    });
    if (stock.has(serviceName)) stock.set(serviceName, (stock.get(serviceName) ?? 1) - 1);
    if (key !== undefined) state.idempotency.set(key, { state: 'done', verificationId: v.id });
    return created(base, v.id);
  }

  function created(base: string, id: string): FakeAnswer {
    const href = `${linkOrigin ?? base}${API}/verifications/${id}`;
    return json(201, { method: 'GET', href }, { Location: href });
  }

  function route(method: string, path: string): { name: TextVerifiedRoute; id?: string } | null {
    if (!path.startsWith(API)) return null;
    const rest = path.slice(API.length);
    if (method === 'POST' && rest === '/auth') return { name: 'auth' };
    if (method === 'GET' && rest === '/account/me') return { name: 'account' };
    if (method === 'GET' && rest === '/services') return { name: 'services' };
    if (method === 'POST' && rest === '/pricing/verifications') return { name: 'pricing' };
    if (method === 'POST' && rest === '/verifications') return { name: 'create' };
    if (method === 'GET' && rest === '/verifications') return { name: 'list' };
    if (method === 'GET' && rest === '/sms') return { name: 'sms' };
    if (method === 'GET' && rest === '/calls') return { name: 'calls' };
    if (method === 'GET' && rest === '/area-codes') return { name: 'area-codes' };
    const one = /^\/verifications\/([^/]+)(\/cancel|\/report|\/reuse)?$/.exec(rest);
    if (!one) return null;
    const id = decodeURIComponent(one[1]!);
    if (method === 'GET' && !one[2]) return { name: 'details', id };
    if (method === 'POST' && one[2] === '/cancel') return { name: 'cancel', id };
    if (method === 'POST' && one[2] === '/report') return { name: 'report', id };
    if (method === 'POST' && one[2] === '/reuse') return { name: 'reuse', id };
    return null;
  }

  function handle(base: string, r: { name: TextVerifiedRoute; id?: string }, req: RecordedRequest): FakeAnswer {
    let body: Record<string, unknown> = {};
    if (req.body.trim() !== '') {
      try {
        body = JSON.parse(req.body) as Record<string, unknown>;
      } catch {
        return error(400, 'InvalidRequest', 'Body is not JSON.');
      }
    }
    switch (r.name) {
      case 'auth': {
        state.authRequests += 1;
        if (req.headers['x-api-key'] !== apiKey || req.headers['x-api-username'] !== apiUsername) return { status: 401 };
        const token = `tok_${randomUUID()}`;
        const lifetime = options.tokenLifetimeSeconds ?? 899;
        const expiresAt = new Date(clock.now().getTime() + lifetime * 1000);
        tokens.set(token, expiresAt);
        return json(200, { token, expiresIn: lifetime, expiresAt: expiresAt.toISOString() });
      }
      case 'account':
        return json(200, options.omitBalance ? { username: apiUsername } : { username: apiUsername, currentBalance: state.balance });
      case 'services':
        return json(200, [
          ...Object.keys(prices).map((serviceName) => ({
            serviceName,
            capability: (options.voiceServices ?? []).includes(serviceName) ? 'smsAndVoiceCombo' : 'sms',
          })),
          { serviceName: 'voiceonly', capability: 'voice' },
        ]);
      case 'pricing': {
        const invalid = invalidBody(body, PRICE_CHECK_FIELDS, ['serviceName', 'areaCode', 'carrier', 'numberType', 'capability']);
        if (invalid) return invalid;
        if (typeof body.numberType !== 'string' || !NUMBER_TYPES.has(body.numberType)) return error(400, 'InvalidRequest', 'Unknown numberType.');
        const name = body.serviceName;
        if (typeof name !== 'string' || !(name in prices)) return error(400, 'InvalidServiceName', 'Unknown service.');
        const extra = surchargeFor({ areaCode: body.areaCode === true, carrier: body.carrier === true, voice: body.capability !== 'sms' });
        return json(200, { serviceName: name, price: Math.round((prices[name]! + extra) * 100) / 100 });
      }
      case 'area-codes':
        return json(200, options.areaCodes ?? [{ areaCode: '212', state: 'NY' }, { areaCode: '415', state: 'CA' }]);
      case 'create': {
        const key = req.headers['idempotency-key'];
        return createVerification(base, body, typeof key === 'string' ? key.trim() : undefined);
      }
      case 'list': {
        const all = [...state.verifications.values()].reverse().map((v) => ({
          id: v.id,
          number: v.number,
          createdAt: v.createdAt.toISOString(),
          state: stateOf(v),
          serviceName: v.serviceName,
          totalCost: v.totalCost,
          link: link(base, `/verifications/${v.id}`),
          sms: link(base, `/sms?reservationId=${v.id}&reservationType=verification`),
          calls: link(base, `/calls?reservationId=${v.id}&reservationType=verification`),
        }));
        return json(200, page(base, '/verifications', req.query, all));
      }
      case 'details': {
        const v = state.verifications.get(r.id ?? '');
        return v ? json(200, expanded(base, v)) : { status: 404 };
      }
      case 'cancel': {
        const v = state.verifications.get(r.id ?? '');
        if (!v) return { status: 404 };
        if (!canCancel(v)) return error(400, 'CancelNotAllowed', 'This verification cannot be canceled.');
        v.state = 'verificationCanceled';
        state.balance = Math.round((state.balance + v.totalCost) * 100) / 100;
        return { status: 200 };
      }
      case 'report': {
        const v = state.verifications.get(r.id ?? '');
        if (!v) return { status: 404 };
        const s = stateOf(v);
        if (s !== 'verificationPending' && s !== 'verificationCompleted') return error(400, 'ReportNotAllowed', 'This verification cannot be reported.');
        v.state = 'verificationReported';
        return { status: 200 };
      }
      case 'reuse': {
        const v = state.verifications.get(r.id ?? '');
        if (!v) return { status: 404 };
        return reuse(base, v);
      }
      case 'sms': {
        // Every filter given applies, as documented. `to` is compared with the number as the fake
        // stores it (ten digits): a client that spells it otherwise sees nothing.
        const to = req.query.get('to');
        const reservationId = req.query.get('reservationId');
        const reservationType = req.query.get('reservationType');
        const list = state.sms
          .filter((s) => to === null || s.to === to)
          .filter((s) => reservationId === null || s.reservationId === reservationId)
          .filter((s) => reservationType === null || s.reservationType === reservationType)
          .map((s) => ({
            id: s.id,
            from: s.from,
            to: s.to,
            createdAt: s.createdAt.toISOString(),
            smsContent: s.smsContent,
            parsedCode: s.parsedCode,
            encrypted: false,
          }));
        return json(200, page(base, '/sms', req.query, list));
      }
      case 'calls': {
        // ListCallsPublic: the same three filters as the SMS list, PaginatedData.Call answers.
        const to = req.query.get('to');
        const reservationId = req.query.get('reservationId');
        const reservationType = req.query.get('reservationType');
        const list = state.calls
          .filter((c) => to === null || c.to === to)
          .filter((c) => reservationId === null || c.reservationId === reservationId)
          .filter((c) => reservationType === null || c.reservationType === reservationType)
          .map((c) => ({ from: c.from, to: c.to, createdAt: c.createdAt.toISOString(), id: c.id, recordingUri: c.recordingUri }));
        return json(200, page(base, '/calls', req.query, list));
      }
    }
  }

  const server = await listen(async (req, res) => {
    const recorded = await recordRequest(req);
    state.requests.push(recorded);
    const r = route(recorded.method, recorded.path);
    if (!r) return send(res, { status: 404 });
    scheduledCalls();
    const failure = script.take(r.name);
    if (failure && answerFailure(req, res, failure)) return;
    if (r.name !== 'auth') {
      const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      const expiresAt = token ? tokens.get(token) : undefined;
      if (!expiresAt || clock.now().getTime() >= expiresAt.getTime()) return send(res, { status: 401 });
    }
    const answer = handle(server.url, r, recorded);
    if (answerAfterEffect(req, failure)) return;
    send(res, answer);
  });

  const secret = options.webhookSecret ?? 'whsec_test_secret';

  return {
    url: server.url,
    close: server.close,
    state,
    controls: {
      failNext: (route, failure, times) => script.add(route, failure, times),
      clearFailures: () => script.clear(),
      settleReport(verificationId, outcome) {
        const v = state.verifications.get(verificationId);
        if (!v || v.state !== 'verificationReported') throw new Error(`fake textverified: ${verificationId} is not reported`);
        v.state = outcome === 'refunded' ? 'verificationRefunded' : 'verificationCompleted';
        if (outcome === 'refunded') state.balance = Math.round((state.balance + v.totalCost) * 100) / 100;
      },
      deliverSms(verificationId, sms) {
        const v = state.verifications.get(verificationId);
        if (!v) throw new Error(`fake textverified: no verification ${verificationId}`);
        const message: FakeSms = {
          id: `sms_${nextSmsId++}`,
          to: v.number,
          from: '32665',
          createdAt: sms.at ?? clock.now(),
          smsContent: sms.text,
          parsedCode: sms.code === undefined ? (/\d{4,8}/.exec(sms.text)?.[0] ?? null) : sms.code,
          reservationId: v.id,
          reservationType: 'verification',
        };
        state.sms.push(message);
        if (stateOf(v) === 'verificationPending') {
          v.state = v.reusedFrom ? 'verificationReused' : 'verificationCompleted';
          v.completedAt = message.createdAt;
        }
        return message;
      },
      deliverCall(verificationId, call = {}) {
        const v = state.verifications.get(verificationId);
        if (!v) throw new Error(`fake textverified: no verification ${verificationId}`);
        return addCall(v, call);
      },
      smsToNumber(number, sms) {
        const message: FakeSms = {
          id: `sms_${nextSmsId++}`,
          to: number,
          from: '32665',
          createdAt: sms.at,
          smsContent: sms.text,
          parsedCode: sms.code ?? null,
          reservationId: sms.reservationId ?? null,
          reservationType: sms.reservationId ? 'verification' : null,
        };
        state.sms.push(message);
        return message;
      },
      queueNumbers: (...numbers) => void numberQueue.push(...numbers),
      setStock: (serviceName, available) => void stock.set(serviceName, available),
      setIdempotencyState: (key, s) => void state.idempotency.set(key, { state: s }),
      revokeTokens: () => tokens.clear(),
      setLinkOrigin: (origin) => {
        linkOrigin = origin;
      },
      forget: (verificationId) => void state.verifications.delete(verificationId),
      sellElsewhere: (verification) => sell(verification.serviceName, verification.createdAt ?? clock.now()),
      smsWebhookData: (sms) => ({
        from: sms.from,
        to: sms.to,
        createdAt: sms.createdAt.toISOString(),
        smsContent: sms.smsContent,
        parsedCode: sms.parsedCode,
        encrypted: false,
        reservationId: sms.reservationId,
      }),
      async sendWebhook(target, envelope, sendOptions = {}) {
        const rawBody = JSON.stringify({
          id: envelope.id ?? `evt_${randomUUID()}`,
          event: envelope.event,
          occurredAt: (envelope.occurredAt ?? clock.now()).toISOString(),
          attempt: envelope.attempt ?? 1,
          idempotencyKey: envelope.idempotencyKey ?? randomUUID(),
          data: envelope.data,
        });
        const signature = sendOptions.signature ?? signWebhook(rawBody, sendOptions.secret ?? secret);
        const response = await fetch(target, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', 'X-Webhook-Signature': signature },
          body: rawBody,
        });
        return { status: response.status, body: await response.text(), rawBody, signature };
      },
    },
  };
}
