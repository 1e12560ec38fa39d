import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { sql } from 'drizzle-orm';
import { rows } from '../../src/db/database.ts';
import { engines } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { login } from '../support/http.ts';
import { assertLedgerConsistent } from '../support/ledger-invariants.ts';
import { assertLifecycleConsistent } from '../support/lifecycle-invariants.ts';
import { HANDLER_PATH, protocolCustomer, readProtocolResponse, type ProtocolCustomer } from '../support/handler-api.ts';

/**
 * Property: whatever reaches /stubs/handler_api.php — any mix of the protocol's parameters and
 * others, hostile values (NUL bytes, broken percent escapes, lone surrogates, injection strings,
 * huge values), in the query string, a form, JSON or junk body of any content type, too large a
 * body, the key in a header — the answer is HTTP 200 in the protocol's own form: one of its text
 * tokens, or JSON. Never a 5xx, never a problem document. A request without the valid key changes
 * nothing, and the lifecycle and ledger invariants hold afterwards.
 *
 * A fixed seed keeps CI deterministic; FUZZ_SEED and FUZZ_RUNS explore further.
 */
const NUM_RUNS = Number(process.env.FUZZ_RUNS ?? 120);
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : 20_260_315;
const BODY_LIMIT = 4096;

/** Every text token the protocol answers with (docs/sms-activate-api.md). */
const TOKENS = new Set([
  'ACCESS_BALANCE',
  'ACCESS_NUMBER',
  'PURCHASE_PENDING',
  'STATUS_WAIT_CODE',
  'STATUS_OK',
  'STATUS_CANCEL',
  'ACCESS_READY',
  'ACCESS_ACTIVATION',
  'ACCESS_CANCEL',
  'BAD_KEY',
  'BAD_ACTION',
  'BAD_SERVICE',
  'BAD_COUNTRY',
  'BAD_STATUS',
  'WRONG_ACTIVATION_ID',
  'NO_ACTIVATION',
  'NO_NUMBERS',
  'NO_BALANCE',
  'WRONG_MAX_PRICE',
  'EARLY_CANCEL_DENIED',
  'OTP_RECEIVED',
  'TOO_MANY_ACTIVE_RENTALS',
  'RATE_LIMITED',
  'BAD_IDEMPOTENCY_KEY',
  'IDEMPOTENCY_KEY_REUSED',
  'IDEMPOTENCY_IN_PROGRESS',
  'WRONG_OPERATOR',
  'BAD_AREA_CODE',
]);

const ACTIONS = [
  'getBalance',
  'getBalanceAndCashBack',
  'getNumber',
  'getNumberV2',
  'getStatus',
  'getStatusV2',
  'setStatus',
  'getActiveActivations',
  'getPrices',
  'getNumbersStatus',
  'getCountries',
  'getServicesList',
];

/** A value as it goes on the wire: already percent-encoded, or raw bytes no encoder would write. */
type Encoded = string;

const loneSurrogate = fc.constantFrom('%ED%A0%80', '%ED%BF%BF');
const rawJunk = fc.constantFrom('%', '%zz', '%00', '%C0%AF', '%FF%FE', '&', '=', '==', '+', '%2', '%0', '%E2%82', '%u0041');
const nastyText = fc.oneof(
  fc.constantFrom(
    '',
    ' ',
    '\u0000',
    'a\u0000b',
    'null',
    '-1',
    '0',
    '1e309',
    'NaN',
    '1.5',
    '99999999999999999999',
    "' OR 1=1 --",
    '${7*7}',
    '<script>',
    '../../etc/passwd',
    '\r\nX-Injected: 1',
    'ACCESS_NUMBER:1:2',
    '__proto__',
    'constructor',
    '\uFFFF',
    '😀',
  ),
  fc.string({ maxLength: 12 }),
  fc.string({ minLength: 300, maxLength: 600 }),
);
const encodedNasty: fc.Arbitrary<Encoded> = fc.oneof(
  { weight: 5, arbitrary: nastyText.map((s) => encodeURIComponent(s)) },
  { weight: 2, arbitrary: rawJunk },
  { weight: 1, arbitrary: loneSurrogate },
  { weight: 1, arbitrary: fc.tuple(fc.string({ maxLength: 4 }), rawJunk).map(([s, j]) => encodeURIComponent(s) + j) },
);
const plain = (values: string[]) => fc.constantFrom(...values).map((v) => encodeURIComponent(v));
const valueFor: Record<string, fc.Arbitrary<Encoded>> = {
  action: fc.oneof({ weight: 3, arbitrary: plain(ACTIONS) }, { weight: 1, arbitrary: encodedNasty }),
  service: fc.oneof(plain(['wa', 'tg', 'testtimeout', 'testsuccess', 'testnonumbers', 'test_timeout', 'vi', 'zz']), encodedNasty),
  country: fc.oneof(plain(['0', '12', '16', '187', 'US', 'gb', 'FR', '9999']), encodedNasty),
  id: fc.oneof(plain(['1', '2', '3', '999999', '00000000-0000-4000-8000-000000000000']), encodedNasty),
  status: fc.oneof(plain(['1', '3', '6', '8', '-1', '2']), encodedNasty),
  maxPrice: fc.oneof(plain(['0.5', '1.20', '0', '-1', '1e3']), encodedNasty),
  max_price: encodedNasty,
  idempotency_key: fc.oneof(plain(['k1', 'k2', 'has space']), encodedNasty),
};
const otherName = fc.oneof(fc.constantFrom('operator', 'forward', 'ref', 'phoneException', 'api_key[]', 'action[]', '', '%00', '__proto__'), fc.string({ maxLength: 8 }).map(encodeURIComponent));

const param: fc.Arbitrary<[string, Encoded]> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...Object.keys(valueFor)).chain((name) => valueFor[name]!.map((v): [string, Encoded] => [name, v])) },
  { weight: 1, arbitrary: fc.tuple(otherName, encodedNasty) },
);

type KeyChoice = 'valid' | 'revoked' | 'junk' | 'none';
type BodyKind = 'form' | 'json' | 'junk' | 'too-large' | 'none';

interface FuzzRequest {
  method: 'GET' | 'POST';
  key: KeyChoice;
  keyIn: 'query' | 'body' | 'header';
  query: [string, Encoded][];
  body: [string, Encoded][];
  bodyKind: BodyKind;
  contentType: string | null;
  junk: string;
}

const request: fc.Arbitrary<FuzzRequest> = fc.record({
  method: fc.constantFrom('GET' as const, 'POST' as const),
  key: fc.constantFrom<KeyChoice>('valid', 'valid', 'revoked', 'junk', 'none'),
  keyIn: fc.constantFrom('query' as const, 'body' as const, 'header' as const),
  query: fc.array(param, { maxLength: 6 }),
  body: fc.array(param, { maxLength: 6 }),
  bodyKind: fc.constantFrom<BodyKind>('form', 'json', 'junk', 'too-large', 'none'),
  contentType: fc.constantFrom(
    null,
    'application/x-www-form-urlencoded',
    'application/json',
    'text/plain',
    'multipart/form-data; boundary=x',
    'application/xml',
    'application/x-www-form-urlencoded; charset=latin1',
    '',
  ),
  junk: fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('{', '{"a":', '[1,2]', 'null', '{"api_key":{"x":1}}', '\u0000\u0000', '%%%')),
});

function decodeLoosely(value: Encoded): unknown {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

for (const engine of engines) {
  describe(`SMS-Activate protocol: no request gets an answer outside the protocol [${engine}]`, () => {
    let app: TestApp;
    let owner: ProtocolCustomer;
    let revokedKey: string;

    before(async () => {
      app = await startTestApp({ engine, worker: false, env: { BODY_LIMIT_BYTES: String(BODY_LIMIT), SANDBOX_FAILURE_RATE: '1' } });
      const admin = await login(app.url, app.admin.email, app.admin.password);
      owner = await protocolCustomer(app, admin, 5000);
      const revoked = await protocolCustomer(app, admin, 100);
      revokedKey = revoked.key;
      assert.equal((await revoked.user.client.delete(`/v1/api-keys/${revoked.keyId}`)).status, 204);
      // Something to find by id.
      assert.match((await owner.call({ action: 'getNumber', service: 'testtimeout' })).text, /^ACCESS_NUMBER:/);
    });
    after(() => app.close());

    async function send(r: FuzzRequest): Promise<Response> {
      const keyValue = r.key === 'valid' ? owner.key : r.key === 'revoked' ? revokedKey : r.key === 'junk' ? 'nsk_junk' : undefined;
      const query = [...r.query];
      const body = [...r.body];
      const headers: Record<string, string> = {};
      if (keyValue !== undefined) {
        if (r.keyIn === 'header') headers['x-api-key'] = keyValue;
        else if (r.keyIn === 'body' && r.method === 'POST') body.unshift(['api_key', encodeURIComponent(keyValue)]);
        else query.unshift(['api_key', encodeURIComponent(keyValue)]);
      }
      const url = `${app.url}${HANDLER_PATH}?${query.map(([n, v]) => `${n}=${v}`).join('&')}`;
      if (r.method === 'GET') return fetch(url, { headers });
      let payload: string | undefined;
      switch (r.bodyKind) {
        case 'form':
          payload = body.map(([n, v]) => `${n}=${v}`).join('&');
          break;
        case 'json':
          payload = JSON.stringify(Object.fromEntries(body.map(([n, v]) => [decodeLoosely(n), decodeLoosely(v)])));
          break;
        case 'junk':
          payload = r.junk;
          break;
        case 'too-large':
          payload = `${body.map(([n, v]) => `${n}=${v}`).join('&')}&pad=${'x'.repeat(BODY_LIMIT + 10)}`;
          break;
        case 'none':
          payload = undefined;
      }
      if (r.contentType !== null) headers['content-type'] = r.contentType;
      return fetch(url, { method: 'POST', headers, body: payload });
    }

    const ownerVerifications = async () =>
      (await rows<{ n: number }>(app.ctx.database.db, sql`SELECT count(*)::int AS n FROM verifications WHERE user_id = ${owner.user.id}`))[0]!.n;

    test('every answer is HTTP 200 and a protocol token or JSON; without the valid key nothing changes', { timeout: 600_000 }, async () => {
      await fc.assert(
        fc.asyncProperty(request, async (r) => {
          const before = await ownerVerifications();
          const answer = await readProtocolResponse(await send(r));
          assert.equal(answer.status, 200, `status ${answer.status}: ${answer.text}`);
          if (answer.contentType === 'application/json; charset=utf-8') {
            assert.equal(typeof answer.json, 'object');
            assert.notEqual(answer.json, null);
          } else {
            assert.equal(answer.contentType, 'text/plain; charset=utf-8');
            const match = /^([A-Z][A-Z0-9_]*)(?::[^\r\n]*)?$/.exec(answer.text);
            assert.ok(match && TOKENS.has(match[1]!), `not a protocol answer: ${JSON.stringify(answer.text)}`);
          }
          const keySent = r.key === 'valid';
          if (!keySent) assert.equal(await ownerVerifications(), before, 'a request without the key bought something');
        }),
        { numRuns: NUM_RUNS, seed: SEED, verbose: 1 },
      );
      await assertLifecycleConsistent(app.ctx.database.db, 'after the fuzzed requests');
      await assertLedgerConsistent(app.ctx.database.db, 'after the fuzzed requests');
    });
  });
}
