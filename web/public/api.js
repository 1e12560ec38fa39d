// The one way the dashboard talks to the server: JSON in and out, the CSRF header on every
// cookie-authenticated write, and RFC 9457 problem details turned into ApiError objects.

export class ApiError extends Error {
  constructor(status, problem, headers) {
    const body = problem && typeof problem === 'object' ? problem : {};
    super(body.detail || body.title || `Request failed with status ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.problem = body;
    this.code = body.code || codeFromStatus(status);
    this.retryAfterSeconds = parseRetryAfter(headers?.get?.('Retry-After')) ?? numberOrNull(body.retry_after_seconds ?? body.retry_after);
    this.verificationId = body.verification_id ?? body.verification?.id ?? null;
  }
}

/** The request never got an answer (offline, connection reset, server down). Safe to retry. */
export class NetworkError extends Error {
  constructor(cause) {
    super('Could not reach the server.');
    this.name = 'NetworkError';
    this.cause = cause;
  }
}

function codeFromStatus(status) {
  switch (status) {
    case 400: return 'validation_failed';
    case 401: return 'unauthenticated';
    case 402: return 'insufficient_funds';
    case 403: return 'forbidden';
    case 404: return 'not_found';
    case 429: return 'rate_limited';
    default: return status >= 500 ? 'server_error' : 'http_error';
  }
}

function numberOrNull(value) {
  const n = Number(value);
  return value === undefined || value === null || !Number.isFinite(n) ? null : n;
}

export function parseRetryAfter(value) {
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

export function readCookie(name) {
  for (const part of document.cookie.split(';')) {
    const [key, ...rest] = part.trim().split('=');
    if (key === name) return decodeURIComponent(rest.join('='));
  }
  return null;
}

let unauthenticatedHandler = null;
/** Called when any request answers 401 (session ended): the app goes back to the login page. */
export function onUnauthenticated(handler) {
  unauthenticatedHandler = handler;
}

/**
 * request('POST', '/v1/verifications', { body, idempotencyKey }) → { status, data, headers }.
 * Throws ApiError for problem responses and NetworkError when no answer came back.
 * `authRedirect: false` keeps a 401 local (the login form shows it itself).
 */
export async function request(method, path, options = {}) {
  const headers = { Accept: 'application/json, application/problem+json' };
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD') {
    const csrf = readCookie('namaskah_csrf');
    if (csrf) headers['X-CSRF-Token'] = csrf;
  }
  if (options.idempotencyKey) headers['Idempotency-Key'] = options.idempotencyKey;

  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      credentials: 'same-origin',
      cache: 'no-store',
      signal: options.signal,
    });
  } catch (error) {
    if (error?.name === 'AbortError') throw error;
    throw new NetworkError(error);
  }

  const text = await response.text().catch(() => '');
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data, response.headers);
    if (response.status === 401 && options.authRedirect !== false && unauthenticatedHandler) unauthenticatedHandler(error);
    throw error;
  }
  return { status: response.status, data, headers: response.headers };
}

export const api = {
  get: async (path, options) => (await request('GET', path, options)).data,
  post: async (path, body, options = {}) => (await request('POST', path, { ...options, body: body ?? {} })).data,
  put: async (path, body, options = {}) => (await request('PUT', path, { ...options, body: body ?? {} })).data,
  delete: async (path, options) => (await request('DELETE', path, options)).data,
};

/** Build "/v1/x?a=1&b=2", leaving out empty values. */
export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') query.set(key, String(value));
  }
  const qs = query.toString();
  return qs ? `${path}?${qs}` : path;
}

export function newIdempotencyKey() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  // Older browsers: 128 random bits as hex.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
