import http from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { systemClock } from '../clock.ts';
import { checkTarget, RefusedUrlError, type AddressRules, type ResolveHost } from './address-policy.ts';

/**
 * One delivery attempt over the wire. The target is checked again here, on the addresses its name
 * resolves to now, and the connection goes to the address that was checked (a name that changes
 * its answer between the check and the connect cannot slip through). Redirects are not followed
 * (a 3xx is a failed attempt), the whole attempt is bounded by a timeout and at most `maxBytes` of
 * the answer are read.
 */
export interface AttemptRequest {
  url: string;
  eventId: string;
  body: string;
  /** The secrets that sign (the current one, and the previous one during a rotation's overlap). */
  secrets: string[];
  rules: AddressRules;
  resolve: ResolveHost;
  timeoutMs: number;
  maxBytes: number;
}

export interface AttemptOutcome {
  succeeded: boolean;
  status: number | null;
  latencyMs: number;
  /** The first bytes of the answer, as text. */
  excerpt: string | null;
  /** Why there was no answer (refused address, connection refused, timeout). */
  error: string | null;
}

/** The Standard Webhooks headers: one `v1,<base64>` signature per secret, separated by spaces. */
export function signatureHeaders(eventId: string, body: string, secrets: string[], at: Date): Record<string, string> {
  const signature = secrets.map((secret) => new Webhook(secret).sign(eventId, at, body)).join(' ');
  return {
    'webhook-id': eventId,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': signature,
  };
}

/** PostgreSQL text cannot hold NUL; an answer is shown, never interpreted. */
function printable(text: string): string {
  return text.replace(/\u0000/g, '\uFFFD');
}

export async function attemptDelivery(request: AttemptRequest): Promise<AttemptOutcome> {
  // One deadline for the whole attempt: resolving the name, connecting, sending, reading. A timer
  // of our own (AbortSignal.timeout's does not keep the process alive while it waits).
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), request.timeoutMs);
  try {
    return await attempt(request, controller.signal);
  } finally {
    clearTimeout(timer);
  }
}

async function attempt(request: AttemptRequest, deadline: AbortSignal): Promise<AttemptOutcome> {
  const started = performance.now();
  const elapsed = () => Math.max(0, Math.round(performance.now() - started));
  const timedOut = `timed out after ${request.timeoutMs} ms`;
  const url = new URL(request.url);
  let address: string;
  try {
    address = await Promise.race([
      checkTarget(url, request.rules, request.resolve),
      new Promise<never>((_, reject) => deadline.addEventListener('abort', () => reject(new RefusedUrlError(timedOut)), { once: true })),
    ]);
  } catch (error) {
    const message = error instanceof RefusedUrlError ? error.message : String(error);
    return { succeeded: false, status: null, latencyMs: elapsed(), excerpt: null, error: `not sent: ${message}` };
  }
  // The signature's timestamp is the system's wall time, whatever clock schedules the work:
  // receivers compare it with their own clock to refuse replays.
  const headers = {
    ...signatureHeaders(request.eventId, request.body, request.secrets, systemClock.now()),
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(request.body)),
    'user-agent': 'Namaskah-Webhooks/1',
  };
  const family = isIP(address) === 6 ? 6 : 4;
  // Connect to the checked address; TLS still verifies the certificate against the URL's host name.
  const lookup: LookupFunction = (_hostname, options, callback) => {
    if ((options as { all?: boolean }).all) (callback as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address, family }]);
    else callback(null, address, family);
  };
  const transport = url.protocol === 'https:' ? https : http;
  return new Promise<AttemptOutcome>((resolve) => {
    let settled = false;
    const finish = (outcome: Omit<AttemptOutcome, 'latencyMs'>) => {
      if (settled) return;
      settled = true;
      resolve({ ...outcome, latencyMs: elapsed() });
    };
    const req = transport.request(url, { method: 'POST', headers, lookup, agent: false, signal: deadline }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const done = () => {
        const status = res.statusCode ?? 0;
        const excerpt = printable(Buffer.concat(chunks).subarray(0, request.maxBytes).toString('utf8'));
        const succeeded = status >= 200 && status < 300;
        finish({ succeeded, status, excerpt, error: succeeded ? null : status >= 300 && status < 400 ? 'redirects are not followed' : null });
        res.destroy();
      };
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        size += chunk.length;
        if (size >= request.maxBytes) done();
      });
      res.on('end', done);
      res.on('error', () => finish({ succeeded: false, status: res.statusCode ?? null, excerpt: null, error: deadline.aborted ? timedOut : 'the answer broke off' }));
    });
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (deadline.aborted) finish({ succeeded: false, status: null, excerpt: null, error: timedOut });
      else finish({ succeeded: false, status: null, excerpt: null, error: error.code ? `${error.code}: ${error.message}` : error.message });
    });
    req.end(request.body);
  });
}
