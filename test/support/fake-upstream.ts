/**
 * The toolkit every fake upstream is built from: a node:http server on 127.0.0.1:0, recorded
 * requests, per-route scripted failures (status codes, 429, HTML pages, hangs, cut connections,
 * before or after the work is done) and a close() that also ends hanging requests. A new seller
 * costs an adapter, a fake built from these parts, and an entry in test/support/provider-contract.ts.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

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

/** Records a request with its body: every fake keeps what it was asked, for wire assertions. */
export async function recordRequest(req: IncomingMessage): Promise<RecordedRequest> {
  const url = new URL(req.url ?? '/', 'http://fake');
  return { method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, headers: req.headers, body: await readBody(req) };
}
