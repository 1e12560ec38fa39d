import createFetchClient, { type Client } from 'openapi-fetch';
import type { components, operations, paths } from './schema.ts';

/**
 * A typed client for the Namaskah API: openapi-fetch over the types openapi-typescript generated
 * from /openapi.json (schema.ts). Every path, parameter, body and answer is checked by the
 * compiler; errors come back as `error`, the RFC 9457 problem with its `code`.
 *
 *   const api = createNamaskahClient({ baseUrl: 'http://127.0.0.1:8080', token: process.env.NAMASKAH_API_KEY });
 *   const { data, error } = await api.POST('/v1/verifications', {
 *     params: { header: { 'idempotency-key': crypto.randomUUID() } },
 *     body: { service: 'test_success' },
 *   });
 */
export type { components, operations, paths };
export type Verification = components['schemas']['Verification'];
export type Wallet = components['schemas']['Wallet'];
export type Notification = components['schemas']['Notification'];
export type Problem = components['schemas']['Problem'];
export type ErrorCode = Problem['code'];
export type NamaskahClient = Client<paths>;

export interface ClientOptions {
  /** Where the API answers, e.g. http://127.0.0.1:8080 (the document's server is relative to it). */
  baseUrl: string;
  /** An API key (nsk_…) or a session token (nss_…), sent as Authorization: Bearer. */
  token?: string;
  fetch?: typeof fetch;
}

export function createNamaskahClient(options: ClientOptions): NamaskahClient {
  return createFetchClient<paths>({
    baseUrl: options.baseUrl,
    fetch: options.fetch,
    headers: options.token ? { authorization: `Bearer ${options.token}` } : undefined,
  });
}

/** One live event from GET /v1/events. */
export type LiveEvent =
  | { event: 'ready'; data: { user_id: string } }
  | { event: 'verification'; data: Verification }
  | { event: 'notification'; data: Notification }
  | { event: 'wallet'; data: Wallet };

/**
 * The live events of the signed-in customer, in order, until `signal` aborts or the server ends
 * the stream (reconnect then, and read the resources to catch up: events are not replayed).
 */
export async function* liveEvents(client: NamaskahClient, signal?: AbortSignal): AsyncGenerator<LiveEvent> {
  const { response, error } = await client.GET('/v1/events', { parseAs: 'stream', signal });
  if (error || !response.body) throw new Error(`GET /v1/events answered ${response.status}`);
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let boundary: number;
    while ((boundary = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, boundary);
      buffer = buffer.slice(boundary + 2);
      const event = /^event: (.+)$/m.exec(block)?.[1];
      const data = /^data: (.+)$/m.exec(block)?.[1];
      // Comments (heartbeats) and the retry hint carry no event.
      if (event && data) yield { event, data: JSON.parse(data) } as LiveEvent;
    }
  }
}
