import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { sql } from 'drizzle-orm';
import { rows } from '../../src/db/database.ts';
import { engines } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { Client, login, registerUser } from '../support/http.ts';

/**
 * Property-based fuzzing of every route the API documents in /openapi.json: path parameters, query
 * strings, headers (documented ones, cookies, CSRF and authorization junk) and bodies, shaped by
 * each route's own schema and filled with hostile values (NUL bytes, lone surrogates, wrong types,
 * huge and fractional numbers, injection strings, malformed cursors). Whatever is sent: never a
 * 5xx, and no wallet changes (no transfer, no hold, no balance moves).
 *
 * Benign values are never domain-valid for writes (random ids, no real service name), so a write
 * that got through would be a bug, not luck. A fixed seed keeps CI deterministic; FUZZ_SEED and
 * FUZZ_RUNS explore further (the seed of a failure is printed with the shrunk request).
 */
const NUM_RUNS = Number(process.env.FUZZ_RUNS ?? 40);
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : 20_261_201;
const NUL = '\u0000';

type JsonSchema = {
  type?: string | string[];
  enum?: unknown[];
  format?: string;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  $ref?: string;
};

interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header';
  schema: JsonSchema;
}

interface Operation {
  method: string;
  path: string;
  parameters: Parameter[];
  body?: JsonSchema;
}

interface FuzzRequest {
  identity: 'customer' | 'admin' | 'anonymous';
  /** Path parameters and query pairs, already percent-encoded. */
  path: Record<string, string>;
  query: [string, string][];
  headers: Record<string, string>;
  body?: { json: unknown } | { raw: string };
}

// ---------------------------------------------------------------- values

const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c));
const nasty = fc.constantFrom(
  '',
  ' ',
  '\t\n',
  '%',
  '%00',
  '%zz',
  '../..',
  'null',
  'undefined',
  '0',
  '-1',
  '1e309',
  'NaN',
  'Infinity',
  '9'.repeat(400),
  'a'.repeat(5000),
  "'; DROP TABLE users; --",
  '${7*7}',
  '{}',
  '[]',
  '\u202e\u200b',
  '𝔘𝔫𝔦𝔠𝔬𝔡𝔢',
);
const hostileString = fc.oneof(
  { weight: 3, arbitrary: fc.tuple(fc.string({ maxLength: 20 }), fc.string({ maxLength: 20 })).map(([a, b]) => `${a}${NUL}${b}`) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.tuple(fc.string({ maxLength: 10 }), loneSurrogate).map(([a, s]) => `${a}${s}`) },
  { weight: 1, arbitrary: nasty },
);
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: hostileString },
  { weight: 1, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.double() },
  { weight: 1, arbitrary: fc.constantFrom(null, true, false, 1e308, -1e308, 2 ** 53, -(2 ** 53) - 2, 0.5, -0, 1e-300) },
  { weight: 1, arbitrary: fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }) },
  { weight: 1, arbitrary: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }) },
);
/** Mostly nothing: an unknown extra field or parameter makes a strict schema refuse the whole request. */
function rarely<T>(arbitrary: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> {
  return fc.oneof({ weight: 9, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary });
}
/** Cursors shaped like the real ones (base64url of "<timestamp>|<id>") with junk in either part. */
const hostileCursor = fc
  .tuple(
    fc.oneof(
      fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
      fc.constantFrom('99999-01-01T00:00:00Z', '0001-01-01T00:00:00Z', '-271821-04-20T00:00:00Z', 'yesterday', ''),
    ),
    fc.oneof(fc.uuid(), hostileString, fc.constantFrom('', 'not-a-uuid', '00000000-0000-0000-0000-00000000000g')),
  )
  .map(([at, id]) => Buffer.from(`${at}|${id}`).toString('base64url'));
/** Percent-encoding of the UTF-8 bytes (a lone surrogate becomes U+FFFD, as any client would send it). */
function percentEncode(text: string): string {
  return [...Buffer.from(text, 'utf8')].map((b) => (/[A-Za-z0-9_.~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('');
}
/** Already percent-encoded, sent as is: bytes that are not UTF-8, an overlong NUL, a cut escape. */
const rawEscapes = fc.constantFrom('%FF', '%ED%A0%80', '%C0%80', '%E0%80', '%', '%0', 'a%2Fb', '%252e');

/** Header values must be byte strings without CR, LF or NUL (the HTTP parser refuses those itself). */
const headerSafe = fc
  .string({ unit: fc.integer({ min: 0x20, max: 0xff }).filter((c) => c !== 0x7f).map((c) => String.fromCharCode(c)), maxLength: 300 })
  .map((s) => s.trim());

function resolve(schema: JsonSchema, spec: any): JsonSchema {
  if (!schema.$ref) return schema;
  const name = schema.$ref.split('/').pop()!;
  return resolve(spec.components.schemas[name], spec);
}

/** A value the schema accepts by type (never one the domain knows: ids are random, strings arbitrary). */
function benign(schema: JsonSchema, spec: any): fc.Arbitrary<unknown> {
  const s = resolve(schema, spec);
  const choices = s.anyOf ?? s.oneOf;
  if (choices) return fc.oneof(...choices.map((c) => benign(c, spec)));
  if (s.enum) return fc.constantFrom(...s.enum);
  const type = Array.isArray(s.type) ? s.type[0] : s.type;
  switch (type) {
    case 'integer':
      return fc.integer({ min: Math.max(s.minimum ?? -1e9, -1e12), max: Math.min(s.maximum ?? 1e9, 1e12) });
    case 'number':
      return fc.double({ min: s.minimum ?? -1e9, max: s.maximum ?? 1e9, noNaN: true });
    case 'boolean':
      return fc.boolean();
    case 'array':
      return fc.array(s.items ? benign(s.items, spec) : fc.jsonValue(), { maxLength: 3 });
    case 'object':
      return shapedObject(s, spec);
    case 'string':
    default: {
      if (s.format === 'uuid') return fc.uuid();
      if (s.format === 'email') return fc.emailAddress();
      if (s.pattern) {
        try {
          return fc.stringMatching(new RegExp(s.pattern));
        } catch {
          // A pattern fast-check cannot generate from: plain strings below.
        }
      }
      return fc.string({ minLength: s.minLength ?? 0, maxLength: Math.min(s.maxLength ?? 40, 60) });
    }
  }
}

/**
 * An object of the schema's properties: mostly every field benign but one hostile (so the hostile
 * value reaches the route's code rather than a sibling's validation), sometimes all benign, sometimes
 * every field anything; rarely with an unknown key.
 */
function shapedObject(schema: JsonSchema, spec: any): fc.Arbitrary<Record<string, unknown>> {
  const properties = Object.entries(schema.properties ?? {});
  const required = new Set(schema.required ?? []);
  const field = (name: string, value: fc.Arbitrary<unknown>) =>
    required.has(name) ? value : fc.option(value, { nil: undefined, freq: 4 });
  const benignRecord = fc.record(Object.fromEntries(properties.map(([name, p]) => [name, field(name, benign(p, spec))])));
  const wildRecord = fc.record(Object.fromEntries(properties.map(([name, p]) => [name, field(name, fc.oneof(benign(p, spec), hostileValue))])));
  const oneHostile =
    properties.length === 0
      ? benignRecord
      : fc
          .tuple(benignRecord, fc.constantFrom(...properties.map(([name]) => name)), hostileValue)
          .map(([record, name, value]) => ({ ...record, [name]: value }));
  return fc
    .tuple(
      fc.oneof({ weight: 4, arbitrary: oneHostile }, { weight: 1, arbitrary: benignRecord }, { weight: 2, arbitrary: wildRecord }),
      rarely(fc.tuple(hostileString, hostileValue)),
    )
    .map(([record, extra]) => {
      const value: Record<string, unknown> = {};
      for (const [key, v] of Object.entries(record)) if (v !== undefined) value[key] = v;
      if (extra) value[extra[0]] = extra[1];
      return value;
    });
}

function requestArbitrary(operation: Operation, spec: any, realIds: string[]): fc.Arbitrary<FuzzRequest> {
  const write = operation.method !== 'GET';
  const pathParams = operation.parameters.filter((p) => p.in === 'path');
  const query = operation.parameters.filter((p) => p.in === 'query');
  const headers = operation.parameters.filter((p) => p.in === 'header');
  // Real ids only where reading them cannot change anything.
  const pathValue = fc.oneof(
    hostileString.map(percentEncode),
    rawEscapes,
    fc.uuid(),
    ...(write || realIds.length === 0 ? [] : [fc.constantFrom(...realIds)]),
  );
  const queryValue = (p: Parameter) =>
    fc.oneof(
      benign(p.schema, spec).map((v) => percentEncode(String(v))),
      hostileString.map(percentEncode),
      rawEscapes,
      // Opaque cursors are decoded by the server: the likeliest place for a parse to go wrong.
      ...(p.name === 'cursor' ? [hostileCursor, hostileCursor, hostileCursor] : []),
    );
  return fc.record({
    identity: fc.constantFrom<FuzzRequest['identity']>('customer', 'customer', 'admin', 'admin', 'anonymous'),
    path: fc.record(Object.fromEntries(pathParams.map((p) => [p.name, pathValue]))) as fc.Arbitrary<Record<string, string>>,
    query: fc
      .tuple(
        ...query.map((p) => fc.option(queryValue(p), { nil: undefined }).map((v) => (v === undefined ? [] : [[p.name, v] as [string, string]]))),
        rarely(fc.tuple(fc.string({ maxLength: 10 }).map(percentEncode), hostileString.map(percentEncode))),
      )
      .map((parts) => {
        // Never mutate a generated value: fast-check shrinks from it.
        const extra = parts[parts.length - 1] as [string, string] | undefined;
        const pairs = (parts.slice(0, -1) as [string, string][][]).flat();
        return extra ? [...pairs, extra] : pairs;
      }),
    headers: fc
      .record(
        {
          ...Object.fromEntries(headers.map((p) => [p.name, fc.oneof(benign(p.schema, spec).map(String), headerSafe)])),
          cookie: fc.oneof(hostileString.map(percentEncode), rawEscapes).map((v) => `namaskah_session=${v}; namaskah_csrf=${v}`),
          'x-csrf-token': headerSafe,
          authorization: fc.oneof(headerSafe, headerSafe.map((v) => `Bearer ${v}`)),
        },
        { requiredKeys: [] },
      )
      .map((h) => Object.fromEntries(Object.entries(h).map(([k, v]) => [k, String(v)]))),
    body: operation.body
      ? fc.oneof(
          { weight: 6, arbitrary: shapedObject(resolve(operation.body, spec), spec).map((json) => ({ json })) },
          { weight: 1, arbitrary: hostileValue.map((json) => ({ json })) },
          { weight: 1, arbitrary: fc.string({ maxLength: 30 }).map((raw) => ({ raw })) },
        )
      : fc.constant(undefined),
  });
}

// ---------------------------------------------------------------- the API as documented

function operationsOf(spec: any): Operation[] {
  const operations: Operation[] = [];
  for (const [path, methods] of Object.entries<any>(spec.paths)) {
    for (const [method, op] of Object.entries<any>(methods)) {
      operations.push({
        method: method.toUpperCase(),
        path,
        parameters: (op.parameters ?? []).map((p: any) => ({ name: p.name, in: p.in, schema: p.schema ?? {} })),
        body: op.requestBody?.content?.['application/json']?.schema,
      });
    }
  }
  return operations;
}

function urlOf(operation: Operation, request: FuzzRequest): string {
  const path = operation.path.replace(/\{([^}]+)\}/g, (_, name: string) => request.path[name] ?? '');
  const search = request.query.map(([name, value]) => `${name}=${value}`).join('&');
  return search ? `${path}?${search}` : path;
}

interface Books {
  transfers: number;
  holds: number;
  accounts: Map<string, string>;
}

async function books(app: TestApp): Promise<Books> {
  const accounts = await rows<{ id: string; posted_minor: number; held_minor: number }>(
    app.ctx.database.db,
    sql`SELECT id, posted_minor, held_minor FROM ledger_accounts`,
  );
  const [counts] = await rows<{ transfers: number; holds: number }>(
    app.ctx.database.db,
    sql`SELECT (SELECT count(*)::int FROM ledger_transfers) AS transfers, (SELECT count(*)::int FROM ledger_holds) AS holds`,
  );
  return { ...counts!, accounts: new Map(accounts.map((a) => [a.id, `${a.posted_minor}/${a.held_minor}`])) };
}

/** New wallets (a fuzzed registration) start empty; every wallet that existed is exactly as it was. */
function assertBooksUnchanged(before: Books, after: Books, context: string): void {
  assert.equal(after.transfers, before.transfers, `a transfer was written: ${context}`);
  assert.equal(after.holds, before.holds, `a hold was placed: ${context}`);
  for (const [id, balance] of after.accounts) {
    assert.equal(balance, before.accounts.get(id) ?? '0/0', `wallet ${id} changed: ${context}`);
  }
}

for (const engine of engines) {
  describe(`fuzzing every documented route: no 5xx, no wallet change [${engine}]`, () => {
    let app: TestApp;
    let spec: any;
    const tokens: Record<string, string> = {};
    let realIds: string[] = [];
    let start: Books;
    before(async () => {
      // No background engine and no SMS delivery: nothing but the fuzzed requests may change state.
      app = await startTestApp({ engine, worker: false, env: { SANDBOX_DELAY_MS: '3600000' } });
      const admin = await login(app.url, app.admin.email, app.admin.password);
      const customer = await registerUser(app.url);
      assert.equal((await admin.client.post(`/v1/admin/users/${customer.id}/credit`, { amount_minor: 5000, reason: 'fuzz float' })).status, 201);
      const bought = await customer.client.post('/v1/verifications', { service: 'whatsapp' }, { headers: { 'idempotency-key': 'fuzz-seed' } });
      assert.equal(bought.status, 201, bought.text);
      // API keys, not sessions: a fuzzed logout must not end the identities the fuzzer uses.
      const customerKey = await customer.client.post('/v1/api-keys', { name: 'fuzz' });
      const adminKey = await admin.client.post('/v1/api-keys', { name: 'fuzz' });
      tokens.customer = customerKey.body.key;
      tokens.admin = adminKey.body.key;
      realIds = [bought.body.id, customer.id, customerKey.body.id];
      spec = (await new Client(app.url).get('/openapi.json')).body;
      start = await books(app);
    });
    after(() => app.close());

    test('/openapi.json documents the routes fuzzed here', () => {
      const documented = operationsOf(spec).map((o) => `${o.method} ${o.path}`);
      for (const route of ['POST /v1/auth/login', 'POST /v1/verifications', 'POST /v1/admin/users/{id}/credit', 'GET /v1/admin/verifications']) {
        assert.ok(documented.includes(route), route);
      }
    });

    // One test per route, so a finding names its route; the route list is read when the suite runs.
    test('every route', async (t) => {
      for (const operation of operationsOf(spec)) {
        await t.test(`${operation.method} ${operation.path}`, async () => {
          await fc.assert(
            fc.asyncProperty(requestArbitrary(operation, spec, realIds), async (request) => {
              const url = urlOf(operation, request);
              const headers: Record<string, string> = { ...request.headers };
              if (request.identity !== 'anonymous') headers.authorization = `Bearer ${tokens[request.identity]}`;
              let body: string | undefined;
              if (request.body) {
                body = 'raw' in request.body ? request.body.raw : JSON.stringify(request.body.json);
                headers['content-type'] = 'application/json';
              }
              const before = operation.method === 'GET' ? undefined : await books(app);
              let response: Response;
              try {
                response = await fetch(new URL(url, app.url), { method: operation.method, headers, body, signal: AbortSignal.timeout(15_000) });
              } catch (error) {
                // The client itself refused to send it (an invalid header value): nothing reached the server.
                if (error instanceof TypeError && !(error.cause instanceof Error && /ECONN|socket/i.test(error.cause.message))) return;
                throw error;
              }
              const streaming = (response.headers.get('content-type') ?? '').startsWith('text/event-stream');
              const text = streaming ? (await response.body?.cancel(), '') : await response.text();
              const context = `${operation.method} ${url} as ${request.identity} → ${response.status} ${text.slice(0, 300)}`;
              assert.ok(response.status < 500, context);
              if (before) assertBooksUnchanged(before, await books(app), context);
            }),
            { numRuns: NUM_RUNS, seed: SEED },
          );
        });
      }
      assertBooksUnchanged(start, await books(app), 'after the whole run');
    });
  });
}
