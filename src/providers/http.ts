/**
 * The one way adapters talk HTTP. Its job is the classification promise of provider.ts at the
 * transport level: every failure leaves here as a ProviderError that says whether the upstream may
 * have acted on the request.
 *
 * - The connection was never made (refused, DNS, unreachable): definite `unavailable`.
 * - No answer in time, or the connection died after the request went out: ambiguous.
 * - 429: definite `rate_limited`, with Retry-After when given.
 * - 5xx: `server_error`, ambiguous for calls that change something upstream, definite for reads.
 * - Anything else (2xx/3xx/4xx) is returned for the adapter to read against its protocol.
 *
 * Error messages name the call by a label and never contain the URL: some protocols put the API
 * key in the query string.
 */
import type { z } from 'zod';
import { ProviderError, type FailureKind } from './provider.ts';
import { decimalToMinor as decimalToMinorUnits, minorToDecimal } from '../money.ts';

export interface UpstreamRequest {
  method: 'GET' | 'POST';
  url: URL;
  headers?: Record<string, string>;
  body?: string;
  timeoutMs: number;
  /** The call can create or change something upstream (a purchase, a cancel). */
  mutating: boolean;
  /** Names the call in errors, e.g. "textverified create verification". */
  label: string;
  /** Reads an HTTP-date Retry-After; the adapter passes its clock. */
  now: () => Date;
}

export interface UpstreamResponse {
  status: number;
  headers: Headers;
  body: string;
}

// Codes meaning the TCP connection was never established, so the request never left.
const NEVER_CONNECTED = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
]);

export async function sendUpstream(request: UpstreamRequest): Promise<UpstreamResponse> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), request.timeoutMs);
  try {
    const response = await fetch(request.url, {
      method: request.method,
      headers: request.headers,
      body: request.body,
      signal: controller.signal,
      // A redirect is not part of any protocol we speak; following one could carry our token elsewhere.
      redirect: 'manual',
    });
    // Reading the body is inside the timeout too: a server can stall after the headers.
    const body = await response.text();
    return classifyStatus(request, { status: response.status, headers: response.headers, body });
  } catch (error) {
    if (error instanceof ProviderError) throw error;
    if (controller.signal.aborted) {
      throw new ProviderError('ambiguous', 'timeout', `${request.label}: no answer within ${request.timeoutMs} ms`, {
        cause: error,
      });
    }
    if (neverConnected(error)) {
      throw new ProviderError('definite', 'unavailable', `${request.label}: could not connect (${errorCode(error)})`, {
        cause: error,
      });
    }
    throw new ProviderError('ambiguous', 'connection_lost', `${request.label}: connection lost (${errorCode(error) ?? 'network error'})`, {
      cause: error,
    });
  } finally {
    clearTimeout(timer);
  }
}

function classifyStatus(request: UpstreamRequest, response: UpstreamResponse): UpstreamResponse {
  const { status } = response;
  if (status === 429) {
    throw new ProviderError('definite', 'rate_limited', `${request.label}: rate limited (429)`, {
      status,
      retryAfterSeconds: parseRetryAfter(response.headers.get('retry-after'), request.now()),
    });
  }
  if (status >= 500) {
    const kind: FailureKind = request.mutating ? 'ambiguous' : 'definite';
    throw new ProviderError(kind, 'server_error', `${request.label}: upstream answered ${status} ${snippet(response.body)}`, {
      status,
      retryAfterSeconds: parseRetryAfter(response.headers.get('retry-after'), request.now()),
    });
  }
  return response;
}

function neverConnected(error: unknown): boolean {
  for (let current: unknown = error, depth = 0; current && depth < 5; depth += 1) {
    if (current instanceof AggregateError && current.errors.length > 0) {
      return current.errors.every((inner) => neverConnected(inner));
    }
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && NEVER_CONNECTED.has(code)) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

function errorCode(error: unknown): string | undefined {
  for (let current: unknown = error, depth = 0; current && depth < 5; depth += 1) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Retry-After is either delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | null | undefined, now: Date): number | undefined {
  if (value === null || value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, Math.ceil((at - now.getTime()) / 1000));
}

/** A short, single-line excerpt of an answer for error messages. */
export function snippet(body: string): string {
  const flat = body.replace(/\s+/g, ' ').trim();
  return flat.length > 120 ? `${flat.slice(0, 120)}…` : flat;
}

export function looksLikeHtml(response: UpstreamResponse): boolean {
  const type = response.headers.get('content-type') ?? '';
  const start = response.body.trimStart().slice(0, 100).toLowerCase();
  return /<!doctype|<html|<head|<body|<title/.test(start) || (type.includes('text/html') && start.startsWith('<'));
}

export function malformed(label: string, detail: string, status?: number): ProviderError {
  return new ProviderError('ambiguous', 'malformed_response', `${label}: ${detail}`, { status });
}

/** Parses a JSON answer; an HTML page or broken JSON is a malformed (ambiguous) answer, never data. */
export function parseJsonBody(response: UpstreamResponse, label: string): unknown {
  if (looksLikeHtml(response)) throw malformed(label, `HTML instead of JSON (status ${response.status})`, response.status);
  try {
    return JSON.parse(response.body);
  } catch {
    throw malformed(label, `not JSON (status ${response.status}): ${snippet(response.body)}`, response.status);
  }
}

/** Validates a parsed answer against its documented shape. */
export function validateShape<S extends z.ZodType>(schema: S, value: unknown, label: string, status?: number): z.output<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'invalid';
    throw malformed(label, `unexpected answer shape (${where})`, status);
  }
  return parsed.data;
}

// ---- Decimal money at the wire edge -------------------------------------------------------------
// Upstreams quote major units as decimals ("12.50", 0.75). They become integer minor units here,
// through the one decimal conversion (src/money.ts), so that 0.1 + 0.2 never happens to money.

/**
 * Converts a non-negative decimal amount to integer minor units (2 decimals). Fractions of a minor
 * unit round in the given direction: costs round up (we never under-estimate what we pay), balances
 * round down (we never over-state our float). Returns null for anything that is not a plain decimal.
 */
export function decimalToMinor(value: number | string, rounding: 'up' | 'down'): number | null {
  return decimalToMinorUnits(value, { rounding });
}

/** Integer minor units as a decimal string in major units: 295 → "2.95". */
export function minorToDecimalString(minor: number): string {
  if (!Number.isSafeInteger(minor) || minor < 0) throw new RangeError(`not a non-negative amount of minor units: ${minor}`);
  return minorToDecimal(minor);
}
