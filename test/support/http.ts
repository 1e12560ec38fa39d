import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';

/** A small fetch wrapper for API tests: JSON in, JSON (or problem details) out. */
export interface ApiResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

export interface RequestOptions {
  body?: unknown;
  /** Sent as is (no JSON encoding); for malformed or oversized bodies. */
  rawBody?: string;
  headers?: Record<string, string>;
  token?: string;
}

export async function call<T = any>(baseUrl: string, method: string, path: string, options: RequestOptions = {}): Promise<ApiResponse<T>> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let body: string | undefined;
  if (options.rawBody !== undefined) {
    body = options.rawBody;
    headers['content-type'] ??= 'application/json';
  } else if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers['content-type'] ??= 'application/json';
  }
  const response = await fetch(new URL(path, baseUrl), { method, headers, body });
  const text = await response.text();
  let parsed: unknown = undefined;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
  }
  return { status: response.status, headers: response.headers, body: parsed as T, text };
}

/** An API client bound to one bearer token. */
export class Client {
  constructor(
    readonly baseUrl: string,
    readonly token?: string,
  ) {}
  request<T = any>(method: string, path: string, options: Omit<RequestOptions, 'token'> = {}) {
    return call<T>(this.baseUrl, method, path, { ...options, token: this.token });
  }
  get<T = any>(path: string, options?: Omit<RequestOptions, 'token' | 'body'>) {
    return this.request<T>('GET', path, options);
  }
  post<T = any>(path: string, body?: unknown, options: Omit<RequestOptions, 'token' | 'body'> = {}) {
    return this.request<T>('POST', path, { ...options, body });
  }
  delete<T = any>(path: string, options?: Omit<RequestOptions, 'token' | 'body'>) {
    return this.request<T>('DELETE', path, options);
  }
}

export interface TestUser {
  id: string;
  email: string;
  password: string;
  token: string;
  role: 'customer' | 'admin';
  client: Client;
  /** Cookies set by the login answer (session and CSRF), for cookie-authenticated calls. */
  cookies: Record<string, string>;
}

export function uniqueEmail(label = 'user'): string {
  return `${label}-${randomBytes(5).toString('hex')}@example.test`;
}

export function cookiesOf(headers: Headers): Record<string, string> {
  const jar: Record<string, string> = {};
  for (const line of headers.getSetCookie()) {
    const [pair] = line.split(';');
    const index = pair!.indexOf('=');
    jar[pair!.slice(0, index)] = decodeURIComponent(pair!.slice(index + 1));
  }
  return jar;
}

function asUser(response: ApiResponse, password: string, baseUrl: string): TestUser {
  if (response.status !== 200 && response.status !== 201) {
    throw new Error(`authentication failed: ${response.status} ${response.text}`);
  }
  const { user, token } = response.body;
  return {
    id: user.id,
    email: user.email,
    role: user.role,
    password,
    token,
    client: new Client(baseUrl, token),
    cookies: cookiesOf(response.headers),
  };
}

export async function registerUser(baseUrl: string, options: { email?: string; password?: string } = {}): Promise<TestUser> {
  const email = options.email ?? uniqueEmail();
  const password = options.password ?? `pw-${randomBytes(8).toString('hex')}`;
  const response = await call(baseUrl, 'POST', '/v1/auth/register', { body: { email, password } });
  return asUser(response, password, baseUrl);
}

export async function login(baseUrl: string, email: string, password: string): Promise<TestUser> {
  const response = await call(baseUrl, 'POST', '/v1/auth/login', { body: { email, password } });
  return asUser(response, password, baseUrl);
}

/** A Cookie header for cookie-authenticated (dashboard-style) calls. */
export function cookieHeader(cookies: Record<string, string>): string {
  return Object.entries(cookies)
    .map(([k, v]) => `${k}=${encodeURIComponent(v)}`)
    .join('; ');
}

/** Asserts an RFC 9457 problem details answer with the given status and stable code. */
export function assertProblem(response: ApiResponse, status: number, code: string): void {
  assert.equal(response.status, status, response.text);
  assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json/);
  assert.equal(response.body.code, code, response.text);
  assert.equal(response.body.status, status);
  assert.equal(typeof response.body.title, 'string');
  assert.equal(typeof response.body.detail, 'string');
  assert.equal(response.body.type, `urn:namaskah:problem:${code}`);
}

export interface EventStream {
  /** Resolves with the data of the first event of that name matching `until` (in whatever order they came). */
  next(event: string, until?: (data: any) => boolean): Promise<any>;
  /** Every event received so far. */
  readonly seen: { event: string; data: any }[];
  close(): void;
}

/** Opens GET /v1/events as a customer and reads its server-sent events. */
export async function openEventStream(baseUrl: string, token: string): Promise<EventStream> {
  const controller = new AbortController();
  const response = await fetch(new URL('/v1/events', baseUrl), { headers: { authorization: `Bearer ${token}` }, signal: controller.signal });
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /text\/event-stream/);
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  const seen: { event: string; data: any }[] = [];
  return {
    seen,
    async next(event, until = () => true) {
      for (;;) {
        const found = seen.find((e) => e.event === event && until(e.data));
        if (found) return found.data;
        const chunk = await reader.read();
        if (chunk.done) throw new Error('stream ended');
        buffer += decoder.decode(chunk.value, { stream: true });
        let boundary;
        while ((boundary = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, boundary);
          buffer = buffer.slice(boundary + 2);
          const name = /^event: (.+)$/m.exec(block)?.[1];
          const data = /^data: (.+)$/m.exec(block)?.[1];
          if (name && data) seen.push({ event: name, data: JSON.parse(data) });
        }
      }
    },
    close: () => controller.abort(),
  };
}
