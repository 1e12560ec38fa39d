import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

/**
 * A customer's webhook receiver on 127.0.0.1: a real HTTP server that verifies every request with
 * the `standardwebhooks` package (as a customer would) and answers as the test scripts it — 200,
 * an error status, a redirect, or never (to drive timeouts).
 */
export type ReceiverAnswer = number | 'hang' | { status: number; body?: string; headers?: Record<string, string> };

export interface ReceivedWebhook {
  id: string;
  timestamp: string;
  signature: string;
  body: string;
  payload: { id: string; type: string; created_at: string; data: any };
  /** Which of the receiver's secrets verified it (undefined: none did). */
  verifiedWith?: string;
}

export class WebhookReceiver {
  readonly received: ReceivedWebhook[] = [];
  /** Secrets the receiver accepts; each request is verified against every one. */
  secrets: string[] = [];
  /** Answers to give, in order; when empty, `fallback`. */
  readonly script: ReceiverAnswer[] = [];
  fallback: ReceiverAnswer = 200;
  /** Answers by what was received (overrides script and fallback when set). */
  decide?: (hook: ReceivedWebhook, earlierForSameId: number) => ReceiverAnswer;
  /** Real milliseconds before answering (widens the window in which two workers could overlap). */
  delayMs = 0;
  private readonly hanging = new Set<ServerResponse>();
  private server?: Server;
  url = '';

  async start(): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hooks`;
    return this;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const headers = {
      'webhook-id': String(req.headers['webhook-id'] ?? ''),
      'webhook-timestamp': String(req.headers['webhook-timestamp'] ?? ''),
      'webhook-signature': String(req.headers['webhook-signature'] ?? ''),
    };
    const verifiedWith = this.secrets.find((secret) => {
      try {
        new Webhook(secret).verify(body, headers);
        return true;
      } catch {
        return false;
      }
    });
    const hook: ReceivedWebhook = {
      id: headers['webhook-id'],
      timestamp: headers['webhook-timestamp'],
      signature: headers['webhook-signature'],
      body,
      payload: JSON.parse(body),
      verifiedWith,
    };
    const earlier = this.received.filter((r) => r.id === hook.id).length;
    this.received.push(hook);
    if (this.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    const answer = this.decide ? this.decide(hook, earlier) : (this.script.shift() ?? this.fallback);
    if (answer === 'hang') {
      this.hanging.add(res);
      return;
    }
    const { status, body: text, headers: extra } = typeof answer === 'number' ? { status: answer, body: undefined, headers: {} } : answer;
    res.writeHead(status, { 'content-type': 'text/plain', ...extra });
    res.end(text ?? (status < 300 ? 'ok' : `error ${status}`));
  }

  async stop(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

/** A URL on 127.0.0.1 where nothing listens: connections are refused. */
export async function refusingUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}/hooks`;
}
