/**
 * A local TextVerified API v2 for tests: the documented paths, headers, JSON bodies and status
 * codes, with in-memory state and controls to script failures (429, 5xx, HTML pages, hangs, a
 * connection cut after the order was created), deliver SMS, expire orders and send signed webhooks.
 *
 * The first part of this file is the plumbing shared with the SMS-Activate fake (a node:http server
 * on 127.0.0.1:0, per-route scripted failures, a close() that also ends hanging requests).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { systemClock, type Clock } from '../../src/clock.ts';
import { signTextVerifiedWebhook } from '../../src/providers/textverified/webhook.ts';

export type ScriptedFailure =
  /** Answer with this status and body instead of handling the request. */
  | { type: 'status'; status: number; body?: string; contentType?: string; headers?: Record<string, string> }
  /** 429 with a Retry-After header (seconds or an HTTP date). */
  | { type: 'rateLimit'; retryAfter: string }
  /** A proxy's HTML error page with this status (502 from a gateway, or 200 from a captive portal). */
  | { type: 'html'; status: number }
  /** Never answer, do nothing: the client times out. */
  | { type: 'hang' }
  /** Cut the connection without doing anything. */
  | { type: 'drop' }
  /** Do the work (e.g. create the order) and never answer. */
  | { type: 'hangAfterEffect' }
  /** Do the work, then cut the connection before the answer. */
  | { type: 'dropAfterEffect' };

export const HTML_ERROR_PAGE =
  '<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>';

export interface FakeAnswer {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: string;
}

export class FailureScript<Route extends string> {
  private readonly queue = new Map<Route, ScriptedFailure[]>();

  add(route: Route, failure: ScriptedFailure, times = 1): void {
    const list = this.queue.get(route) ?? [];
    for (let i = 0; i < times; i += 1) list.push(failure);
    this.queue.set(route, list);
  }

  take(route: Route): ScriptedFailure | undefined {
    const list = this.queue.get(route);
    return list && list.length > 0 ? list.shift() : undefined;
  }

  clear(): void {
    this.queue.clear();
  }
}

export function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export function send(res: ServerResponse, answer: FakeAnswer): void {
  res.writeHead(answer.status, answer.headers ?? {});
  res.end(answer.body ?? '');
}

/** Answers a pre-effect failure; returns false when the failure only applies after the work. */
export function answerFailure(req: IncomingMessage, res: ServerResponse, failure: ScriptedFailure): boolean {
  switch (failure.type) {
    case 'status':
      send(res, {
        status: failure.status,
        headers: { 'Content-Type': failure.contentType ?? 'application/json', ...failure.headers },
        body: failure.body ?? '',
      });
      return true;
    case 'rateLimit':
      send(res, { status: 429, headers: { 'Retry-After': failure.retryAfter, 'Content-Type': 'text/plain' }, body: 'Too Many Requests' });
      return true;
    case 'html':
      send(res, { status: failure.status, headers: { 'Content-Type': 'text/html' }, body: HTML_ERROR_PAGE });
      return true;
    case 'hang':
      return true;
    case 'drop':
      req.socket.destroy();
      return true;
    default:
      return false;
  }
}

/** Applies an after-effect failure in place of the answer; returns false if there was none. */
export function answerAfterEffect(req: IncomingMessage, failure: ScriptedFailure | undefined): boolean {
  if (failure?.type === 'hangAfterEffect') return true;
  if (failure?.type === 'dropAfterEffect') {
    req.socket.destroy();
    return true;
  }
  return false;
}

export async function listen(
  handler: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    handler(req, res).catch((error: unknown) => {
      if (!res.headersSent) send(res, { status: 500, headers: { 'Content-Type': 'text/plain' }, body: `fake server bug: ${String(error)}` });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections(); // ends hanging requests too
      }),
  };
}

// ---- TextVerified ---------------------------------------------------------------------------------

export type TextVerifiedRoute = 'auth' | 'account' | 'services' | 'pricing' | 'create' | 'list' | 'details' | 'cancel' | 'report' | 'sms';

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
}

export interface FakeSms {
  id: string;
  to: string;
  from: string;
  createdAt: Date;
  smsContent: string;
  parsedCode: string | null;
  reservationId: string | null;
}

type IdempotencyRecord = { state: 'running' } | { state: 'expired' } | { state: 'done'; verificationId: string };

export interface FakeTextVerified {
  url: string;
  close(): Promise<void>;
  state: {
    verifications: Map<string, FakeVerification>;
    sms: FakeSms[];
    idempotency: Map<string, IdempotencyRecord>;
    /** Verifications actually created (sold). */
    purchases: number;
    authRequests: number;
    balance: number;
    requests: RecordedRequest[];
  };
  controls: {
    failNext(route: TextVerifiedRoute, failure: ScriptedFailure, times?: number): void;
    /** An SMS to a verification's number, assigned to it. */
    deliverSms(verificationId: string, sms: { text: string; code?: string | null; at?: Date }): FakeSms;
    /** An SMS to a bare number, e.g. one a previous holder of a recycled number received. */
    smsToNumber(number: string, sms: { text: string; code?: string | null; at: Date; reservationId?: string | null }): FakeSms;
    /** Numbers handed out by the next purchases, in order (ten digits). */
    queueNumbers(...numbers: string[]): void;
    setStock(serviceName: string, available: number): void;
    setIdempotencyState(key: string, state: 'running' | 'expired'): void;
    /** Invalidates every issued token (the next authorised call gets 401). */
    revokeTokens(): void;
    /** Makes create answers point at another origin (to check the client refuses to follow). */
    setLinkOrigin(origin: string | null): void;
    /** POSTs a signed webhook envelope to a receiver. */
    sendWebhook(
      target: string,
      envelope: { event: string; data: unknown; id?: string; attempt?: number; occurredAt?: Date },
      options?: { secret?: string; signature?: string },
    ): Promise<{ status: number; body: string; rawBody: string; signature: string }>;
  };
}

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
  let linkOrigin: string | null = null;

  const state: FakeTextVerified['state'] = {
    verifications: new Map(),
    sms: [],
    idempotency: new Map(),
    purchases: 0,
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

  function canCancel(v: FakeVerification): boolean {
    const after = (options.cancelableAfterSeconds ?? 0) * 1000;
    return stateOf(v) === 'verificationPending' && smsOf(v).length === 0 && clock.now().getTime() >= v.createdAt.getTime() + after;
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
      sms: link(base, `/sms?reservationId=${v.id}`),
      calls: link(base, `/calls?reservationId=${v.id}`),
      sale: link(base, `/sales/sale_${v.id}`),
      cancel: { canCancel: canCancel(v), link: link(base, `/verifications/${v.id}/cancel`, 'POST') },
      report: { canReport: s === 'verificationPending' || s === 'verificationCompleted', link: link(base, `/verifications/${v.id}/report`, 'POST') },
      reuse: { reusableUntil: null, link: link(base, `/verifications/${v.id}/reuse`, 'POST') },
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

  function createVerification(base: string, body: Record<string, unknown>, key: string | undefined): FakeAnswer {
    if (key !== undefined) {
      const record = state.idempotency.get(key);
      if (record?.state === 'running') return error(409, 'IdempotencyConflict', 'A request with this idempotency key is still being processed.');
      if (record?.state === 'expired') return error(400, 'IdempotencyKeyExpired', 'The request with this idempotency key expired without completing. Start over with a new key.');
      if (record?.state === 'done') return created(base, record.verificationId);
    }
    const serviceName = body.serviceName;
    if (typeof serviceName !== 'string' || !(serviceName in prices)) return error(400, 'InvalidServiceName', 'Unknown service.');
    if (body.capability !== 'sms') return error(400, 'InvalidCapability', 'Unsupported capability.');
    const price = prices[serviceName]!;
    if ((stock.get(serviceName) ?? 1) <= 0) return error(400, 'Unavailable', 'No numbers are available for this request.');
    if (typeof body.maxPrice === 'number' && body.maxPrice < price) return error(400, 'PricingFailure', `Price ${price} is above maxPrice.`);
    if (state.balance < price) return error(400, 'InsufficientBalance', 'Insufficient balance.');
    const unfinished = [...state.verifications.values()].filter((v) => stateOf(v) === 'verificationPending').length;
    if (unfinished >= (options.maxUnfinished ?? 10)) return error(400, 'TooManyUnfinishedVerifications', 'Too many pending verifications.');

    const now = clock.now();
    const v: FakeVerification = {
      id: `lr_${String(nextId++).padStart(6, '0')}`,
      number: numberQueue.shift() ?? String(nextNumber++),
      serviceName,
      createdAt: now,
      endsAt: new Date(now.getTime() + (options.verificationLifetimeSeconds ?? 900) * 1000),
      state: 'verificationPending',
      totalCost: price,
    };
    state.verifications.set(v.id, v);
    state.purchases += 1;
    state.balance = Math.round((state.balance - price) * 100) / 100;
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
    const one = /^\/verifications\/([^/]+)(\/cancel|\/report)?$/.exec(rest);
    if (!one) return null;
    const id = decodeURIComponent(one[1]!);
    if (method === 'GET' && !one[2]) return { name: 'details', id };
    if (method === 'POST' && one[2] === '/cancel') return { name: 'cancel', id };
    if (method === 'POST' && one[2] === '/report') return { name: 'report', id };
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
        return json(200, { username: apiUsername, currentBalance: state.balance });
      case 'services':
        return json(200, [
          ...Object.keys(prices).map((serviceName) => ({ serviceName, capability: 'sms' })),
          { serviceName: 'voiceonly', capability: 'voice' },
        ]);
      case 'pricing': {
        const name = body.serviceName;
        if (typeof name !== 'string' || !(name in prices)) return error(400, 'InvalidServiceName', 'Unknown service.');
        return json(200, { serviceName: name, price: prices[name] });
      }
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
          sms: link(base, `/sms?reservationId=${v.id}`),
          calls: link(base, `/calls?reservationId=${v.id}`),
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
      case 'sms': {
        // Filtered by number when given (numbers are recycled), else by reservation.
        const to = req.query.get('to');
        const reservationId = req.query.get('reservationId');
        const list = state.sms
          .filter((s) => (to ? s.to === to : reservationId ? s.reservationId === reservationId : true))
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
    }
  }

  const server = await listen(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://fake');
    const recorded: RecordedRequest = { method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, headers: req.headers, body: await readBody(req) };
    state.requests.push(recorded);
    const r = route(recorded.method, url.pathname);
    if (!r) return send(res, { status: 404 });
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
        };
        state.sms.push(message);
        if (stateOf(v) === 'verificationPending') v.state = 'verificationCompleted';
        return message;
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
      async sendWebhook(target, envelope, sendOptions = {}) {
        const rawBody = JSON.stringify({
          id: envelope.id ?? `evt_${randomUUID()}`,
          event: envelope.event,
          occurredAt: (envelope.occurredAt ?? clock.now()).toISOString(),
          attempt: envelope.attempt ?? 1,
          idempotencyKey: randomUUID(),
          data: envelope.data,
        });
        const signature = sendOptions.signature ?? signTextVerifiedWebhook(rawBody, sendOptions.secret ?? secret);
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
