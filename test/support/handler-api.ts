import assert from 'node:assert/strict';
import type { TestApp } from './app.ts';
import { registerUser, type TestUser } from './http.ts';

/** A call to /stubs/handler_api.php as a tool written for the SMS-Activate protocol makes it. */
export interface ProtocolResponse {
  status: number;
  contentType: string;
  text: string;
  /** The body parsed, when it is JSON. */
  json?: any;
}

export interface ProtocolCallOptions {
  /** GET (default): parameters in the query string; POST: in a form body. */
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  /** A body sent as is (POST), instead of the parameters as a form. */
  rawBody?: string;
}

export const HANDLER_PATH = '/stubs/handler_api.php';

export async function handlerApi(baseUrl: string, params: Record<string, string>, options: ProtocolCallOptions = {}): Promise<ProtocolResponse> {
  const method = options.method ?? 'GET';
  const form = new URLSearchParams(params).toString();
  const url = new URL(HANDLER_PATH, baseUrl);
  const headers: Record<string, string> = { ...options.headers };
  let body: string | undefined;
  if (method === 'GET') url.search = form;
  else {
    body = options.rawBody ?? form;
    if (options.rawBody === undefined) headers['content-type'] ??= 'application/x-www-form-urlencoded';
  }
  const response = await fetch(url, { method, headers, body });
  return readProtocolResponse(response);
}

export async function readProtocolResponse(response: Response): Promise<ProtocolResponse> {
  const text = await response.text();
  const contentType = response.headers.get('content-type') ?? '';
  return { status: response.status, contentType, text, json: contentType.startsWith('application/json') ? JSON.parse(text) : undefined };
}

/** Asserts a plain-text protocol answer (HTTP 200, text/plain) and returns its text. */
export function assertText(response: ProtocolResponse, expected: string | RegExp): string {
  assert.equal(response.status, 200, response.text);
  assert.equal(response.contentType, 'text/plain; charset=utf-8');
  if (typeof expected === 'string') assert.equal(response.text, expected);
  else assert.match(response.text, expected);
  return response.text;
}

/** Asserts a JSON protocol answer (HTTP 200, application/json) and returns the document. */
export function assertJson(response: ProtocolResponse): any {
  assert.equal(response.status, 200, response.text);
  assert.equal(response.contentType, 'application/json; charset=utf-8', response.text);
  return response.json;
}

export interface ProtocolCustomer {
  user: TestUser;
  /** An API key from /v1/api-keys, as the customer pastes it into their tool. */
  key: string;
  keyId: string;
  /** Calls the handler with this customer's key as `api_key`. */
  call(params: Record<string, string>, options?: ProtocolCallOptions): Promise<ProtocolResponse>;
}

/** A new customer with `funds` minor units (credited by the admin) and an API key. */
export async function protocolCustomer(app: TestApp, admin: TestUser, funds: number): Promise<ProtocolCustomer> {
  const user = await registerUser(app.url);
  if (funds > 0) {
    const credit = await admin.client.post(`/v1/admin/users/${user.id}/credit`, { amount_minor: funds, reason: 'test funds' });
    assert.equal(credit.status, 201);
  }
  const created = await user.client.post('/v1/api-keys', { name: 'sms-activate tool' });
  assert.equal(created.status, 201);
  const key: string = created.body.key;
  return {
    user,
    key,
    keyId: created.body.id,
    call: (params, options) => handlerApi(app.url, { api_key: key, ...params }, options),
  };
}

/** The customer's wallet through /v1: [balance, held, available]. */
export async function walletOf(user: TestUser): Promise<[number, number, number]> {
  const w = (await user.client.get('/v1/wallet')).body;
  return [w.balance_minor, w.held_minor, w.available_minor];
}
