/**
 * The signed webhook receiver on a real server configured for TextVerified (pointed at the fake
 * TextVerified API): a customer buys over HTTP, then `v2.sms.received` webhooks arrive at
 * /webhooks/providers/textverified. Genuine ones capture exactly once; replays, forgeries, stale,
 * malformed and recycled-number ones change nothing; a webhook racing the poller is one capture.
 * The server runs without its own engine (`worker: false`) on a ManualClock shared with the fake,
 * and the test drives the engine with tick(); its runtime carries a fault hook, so the race test
 * can hold the poller between fetching an SMS and recording it.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { ManualClock } from '../support/clock.ts';
import { rows } from '../../src/db/database.ts';
import { MalformedWebhookError, type Provider, type ProviderWebhooks } from '../../src/providers/provider.ts';
import { SandboxProvider } from '../../src/providers/sandbox.ts';
import { loadVerification, type VerificationRow } from '../../src/verifications/lifecycle.ts';
import { createVerificationRuntime } from '../../src/runtime.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { engines } from '../support/db.ts';
import {
  signWebhook as signTextVerifiedWebhook,
  startFakeTextVerified,
  type FakeSms,
  type FakeTextVerified,
  type FakeTextVerifiedOptions,
} from '../support/fake-textverified.ts';
import { assertProblem, call, login, registerUser, type ApiResponse, type TestUser } from '../support/http.ts';
import { FaultSwitch } from '../support/lifecycle.ts';
import { putProviderCatalogue } from '../support/provider-catalogue.ts';

/** Resolves after `n` turns of the event loop. */
async function afterTurns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

const SECRET = `whsec_${randomBytes(24).toString('base64url')}`;
const WEBHOOK = '/webhooks/providers/textverified';
const PRICE = 200; // whatsapp in DEFAULT_OFFERS.textverified

interface Envelope {
  id: string;
  event: string;
  occurredAt: string;
  attempt: number;
  idempotencyKey: string;
  data: unknown;
}

for (const engine of engines) {
  describe(`signed TextVerified webhooks on a real server [${engine}]`, () => {
    const clock = new ManualClock('2026-03-01T12:00:00Z');
    const fakeOptions: FakeTextVerifiedOptions = {
      clock,
      webhookSecret: SECRET,
      maxUnfinished: 100_000,
      balance: 100_000,
      verificationLifetimeSeconds: 900,
      cancelableAfterSeconds: 0,
    };
    const faults = new FaultSwitch();
    let fake: FakeTextVerified;
    let app: TestApp;
    let admin: TestUser;

    before(async () => {
      fake = await startFakeTextVerified(fakeOptions);
      app = await startTestApp({
        engine,
        clock,
        worker: false,
        runtime: (ctx) => createVerificationRuntime(ctx, { faults: faults.hook }),
        env: {
          PROVIDER: 'textverified',
          TEXTVERIFIED_BASE_URL: fake.url,
          TEXTVERIFIED_API_USERNAME: 'operator@example.com',
          TEXTVERIFIED_API_KEY: 'tv-test-key',
          TEXTVERIFIED_WEBHOOK_SECRET: SECRET,
          PROVIDER_REQUESTS_PER_SECOND: '0',
          PURCHASES_PER_MINUTE: '10000',
          MAX_ACTIVE_VERIFICATIONS: '1000',
          LATE_SMS_WINDOW_SECONDS: '0',
        },
      });
      await putProviderCatalogue(app.ctx.database.db, 'textverified');
      admin = await login(app.url, app.admin.email, app.admin.password);
    });
    after(async () => {
      await app?.close();
      await fake?.close();
    });

    // ---- helpers ----------------------------------------------------------------------------------

    async function customer(funds: number): Promise<TestUser> {
      const user = await registerUser(app.url);
      const credit = await admin.client.post(`/v1/admin/users/${user.id}/credit`, { amount_minor: funds, reason: 'test funds' });
      assert.equal(credit.status, 201, credit.text);
      return user;
    }

    async function wallet(user: TestUser): Promise<[number, number, number]> {
      const res = await user.client.get('/v1/wallet');
      assert.equal(res.status, 200, res.text);
      return [res.body.balance_minor, res.body.held_minor, res.body.available_minor];
    }

    /** Buys over HTTP; returns the verification as stored (with its upstream order id). */
    async function buy(user: TestUser): Promise<VerificationRow> {
      const res = await user.client.post('/v1/verifications', { service: 'whatsapp' }, { headers: { 'idempotency-key': randomUUID() } });
      assert.equal(res.status, 201, res.text);
      assert.equal(res.body.state, 'waiting');
      const row = (await loadVerification(app.ctx.database.db, res.body.id))!;
      assert.equal(res.body.phone_number, row.phoneNumber);
      assert.ok(fake.state.verifications.get(row.providerOrderId!), 'the fake sold the number');
      return row;
    }

    function envelope(data: unknown, overrides: Partial<Envelope> = {}): string {
      const body: Envelope = {
        id: `evt_${randomUUID()}`,
        event: 'v2.sms.received',
        occurredAt: clock.now().toISOString(),
        attempt: 1,
        idempotencyKey: randomUUID(),
        data,
        ...overrides,
      };
      return JSON.stringify(body);
    }

    /** A v2.sms.received payload exactly as documented (SmsWebhookEvent: no SMS id). */
    function smsFor(row: VerificationRow, code: string, overrides: Partial<FakeSms> = {}) {
      return fake.controls.smsWebhookData({
        id: 'unused: the webhook carries no SMS id',
        from: '32665',
        to: row.phoneNumber!.slice(1),
        createdAt: clock.now(),
        smsContent: `Your WhatsApp code is ${code}`,
        parsedCode: code,
        reservationId: row.providerOrderId,
        reservationType: 'verification',
        ...overrides,
      });
    }

    function post(rawBody: string, signature: string | null = signTextVerifiedWebhook(rawBody, SECRET)): Promise<ApiResponse> {
      return call(app.url, 'POST', WEBHOOK, { rawBody, headers: signature === null ? {} : { 'x-webhook-signature': signature } });
    }

    async function count(query: ReturnType<typeof sql>): Promise<number> {
      const [row] = await rows<{ n: number }>(app.ctx.database.db, query);
      return Number(row?.n ?? 0);
    }

    /** Everything a webhook could change about one verification and its customer. */
    async function snapshot(user: TestUser, id: string) {
      const view = (await user.client.get(`/v1/verifications/${id}`)).body;
      return {
        state: view.state,
        code: view.code,
        messages: view.messages.length,
        wallet: await wallet(user),
        charges: await count(sql`SELECT count(*)::int AS n FROM ledger_transfers WHERE verification_id = ${id} AND kind = 'verification_charge'`),
        notices: await count(sql`SELECT count(*)::int AS n FROM notifications WHERE verification_id = ${id}`),
      };
    }

    const deliveries = (key: string) =>
      count(sql`SELECT count(*)::int AS n FROM webhook_deliveries WHERE provider = 'textverified' AND event_id = ${key}`);

    // ---- tests ------------------------------------------------------------------------------------

    test('a signed v2.sms.received captures the code and charges once; the same webhook again is a duplicate', async () => {
      const user = await customer(1000);
      const row = await buy(user);
      assert.deepEqual(await wallet(user), [1000, PRICE, 1000 - PRICE]);
      clock.advance(5000);

      const raw = envelope(smsFor(row, '314159'), { id: 'evt_first' });
      const res = await post(raw);
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.body, { status: 'captured' });

      const view = (await user.client.get(`/v1/verifications/${row.id}`)).body;
      assert.equal(view.state, 'received');
      assert.equal(view.code, '314159');
      assert.deepEqual(
        view.messages.map((m: { text: string; code: string }) => [m.text, m.code]),
        [['Your WhatsApp code is 314159', '314159']],
      );
      const after = await snapshot(user, row.id);
      assert.deepEqual(after.wallet, [1000 - PRICE, 0, 1000 - PRICE]);
      assert.equal(after.charges, 1);
      assert.equal(after.notices, 1);

      // TextVerified retries until it gets a 2xx: the same delivery again is acknowledged, nothing more.
      for (let i = 0; i < 3; i++) {
        const replay = await post(raw);
        assert.equal(replay.status, 200, replay.text);
        assert.deepEqual(replay.body, { status: 'duplicate' });
      }
      assert.deepEqual(await snapshot(user, row.id), after);
    });

    test('the same delivery several times at once (an upstream retry racing the first): one capture, one message, one charge', async () => {
      const user = await customer(1000);
      const row = await buy(user);
      const raw = envelope(smsFor(row, '662607'));
      const answers = await Promise.all(Array.from({ length: 6 }, () => post(raw)));
      for (const res of answers) assert.equal(res.status, 200, res.text);
      assert.equal(answers.filter((res) => res.body.status === 'captured').length, 1, JSON.stringify(answers.map((r) => r.body)));
      const after = await snapshot(user, row.id);
      assert.deepEqual(after, { state: 'received', code: '662607', messages: 1, wallet: [1000 - PRICE, 0, 1000 - PRICE], charges: 1, notices: 1 });
      assert.deepEqual((await post(raw)).body, { status: 'duplicate' });
    });

    test('forged signature, wrong secret, missing header, other scheme, tampered body: 401 and nothing changes', async () => {
      const user = await customer(1000);
      const row = await buy(user);
      const before = await snapshot(user, row.id);
      const raw = envelope(smsFor(row, '271828'), { id: 'evt_forgery_target' });
      const tampered = raw.replace('271828', '000000');
      assert.notEqual(tampered, raw);

      const attempts: [string, string, string | null][] = [
        ['forged signature', raw, `HMAC-SHA512=${randomBytes(64).toString('base64')}`],
        ['wrong secret', raw, signTextVerifiedWebhook(raw, 'whsec_not_ours')],
        ['missing header', raw, null],
        ['empty header', raw, ''],
        ['another scheme', raw, signTextVerifiedWebhook(raw, SECRET).replace('HMAC-SHA512=', 'HMAC-SHA256=')],
        ['tampered body', tampered, signTextVerifiedWebhook(raw, SECRET)],
      ];
      for (const [what, body, signature] of attempts) {
        const res = await post(body, signature);
        assertProblem(res, 401, 'unauthenticated');
        assert.deepEqual(await snapshot(user, row.id), before, what);
      }
      assert.equal(await deliveries('evt_forgery_target'), 0, 'a refused delivery is not remembered');

      // The genuine delivery of the same event still works.
      const genuine = await post(raw);
      assert.deepEqual(genuine.body, { status: 'captured' });
      assert.equal((await snapshot(user, row.id)).code, '271828');
    });

    test('a repeat with a new event id but the same idempotency key is a duplicate: both keys are remembered', async () => {
      const user = await customer(1000);
      const row = await buy(user);
      const first = await post(envelope(smsFor(row, '141421'), { id: 'evt_key_first', idempotencyKey: 'idem_shared' }));
      assert.deepEqual(first.body, { status: 'captured' });
      const after = await snapshot(user, row.id);
      assert.equal(await deliveries('evt_key_first'), 1);
      assert.equal(await deliveries('dedupe:idem_shared'), 1);
      const again = await post(envelope(smsFor(row, '141421'), { id: 'evt_key_second', idempotencyKey: 'idem_shared' }));
      assert.equal(again.status, 200, again.text);
      assert.deepEqual(again.body, { status: 'duplicate' });
      assert.deepEqual(await snapshot(user, row.id), after);
    });

    test('a validly signed event outside the accepted age is acknowledged (200) and ignored, so an outage does not get the endpoint disabled', async () => {
      const user = await customer(1000);
      const row = await buy(user);
      const before = await snapshot(user, row.id);
      const sms = smsFor(row, '161803');
      for (const hours of [-7, 7]) {
        const raw = envelope(sms, { id: `evt_stale_${hours}`, occurredAt: new Date(clock.now().getTime() + hours * 3_600_000).toISOString() });
        const res = await post(raw);
        assert.equal(res.status, 200, res.text);
        assert.deepEqual(res.body, { status: 'stale' });
        assert.equal(await deliveries(`evt_stale_${hours}`), 0, 'not remembered: a replay of it is ignored again');
      }
      assert.deepEqual(await snapshot(user, row.id), before);
      // The poller still finds that SMS upstream in its own time: nothing is lost by ignoring it.
      assert.deepEqual((await post(envelope(sms))).body, { status: 'captured' });
    });

    test('malformed bodies with a valid signature are 400; other events are acknowledged; other providers have no receiver', async () => {
      const user = await customer(1000);
      const row = await buy(user);
      const before = await snapshot(user, row.id);
      const sms = smsFor(row, '161803');

      const malformed = [
        '{"id":"evt_broken","event":"v2.sms.received","occurredAt":', // cut off
        'not json at all',
        JSON.stringify({ id: 'evt_shape', event: 'v2.sms.received', occurredAt: clock.now().toISOString(), attempt: 1 }), // no data
        envelope({ ...sms, createdAt: 'yesterday' }), // data off-shape
      ];
      for (const body of malformed) {
        assertProblem(await post(body), 400, 'validation_failed');
      }
      assert.deepEqual(await snapshot(user, row.id), before);

      // An event we do not act on is acknowledged (TextVerified disables endpoints that keep failing).
      const other = await post(envelope({ id: 'res_1' }, { event: 'v2.reservation.created' }));
      assert.equal(other.status, 200, other.text);
      assert.deepEqual(other.body, { status: 'ignored' });
      assert.deepEqual(await snapshot(user, row.id), before);

      // Only the configured upstream has a receiver.
      for (const name of ['sms-activate', 'sandbox', 'nobody']) {
        assertProblem(await call(app.url, 'POST', `/webhooks/providers/${name}`, { rawBody: '{}' }), 404, 'not_found');
      }

      const genuine = await post(envelope(sms));
      assert.deepEqual(genuine.body, { status: 'captured' });
    });

    test('an SMS older than the purchase (recycled number) is never captured, by webhook or by poller', async () => {
      const user = await customer(1000);
      const first = await buy(user);
      const number = first.phoneNumber!.slice(1);
      assert.deepEqual((await post(envelope(smsFor(first, '111111')))).body, { status: 'captured' });

      clock.advance(60_000);
      fake.controls.queueNumbers(number); // the upstream hands the same number out again
      const second = await buy(user);
      assert.equal(second.phoneNumber, first.phoneNumber);
      assert.notEqual(second.providerOrderId, first.providerOrderId);
      const before = await snapshot(user, second.id);
      assert.equal(before.state, 'waiting');

      const olderThanPurchase = new Date(second.createdAt.getTime() - 30_000);
      // Assigned to the new reservation but sent before it existed.
      const assigned = await post(envelope(smsFor(second, '222222', { createdAt: olderThanPurchase })));
      assert.equal(assigned.status, 200, assigned.text);
      assert.notEqual(assigned.body.status, 'captured');
      // Matched by number only: it belongs to the earlier holder, who already has their code.
      const byNumber = await post(envelope(smsFor(second, '333333', { createdAt: olderThanPurchase, reservationId: null })));
      assert.equal(byNumber.status, 200, byNumber.text);
      assert.notEqual(byNumber.body.status, 'captured');
      // The poller sees the same old SMS in the upstream's list (filtered by number).
      fake.controls.smsToNumber(number, { text: 'Your code is 444444', code: '444444', at: olderThanPurchase });
      clock.advance(1000);
      await app.server.runtime.engine.tick();

      assert.deepEqual(await snapshot(user, second.id), before, 'the new holder is neither charged nor shown the old code');
      const firstView = (await user.client.get(`/v1/verifications/${first.id}`)).body;
      assert.equal(firstView.code, '111111');

      const cancel = await user.client.post(`/v1/verifications/${second.id}/cancel`);
      assert.equal(cancel.status, 200, cancel.text);
      assert.equal(cancel.body.state, 'cancelled');
      assert.equal(cancel.body.refunded, true);
      assert.deepEqual(await wallet(user), [1000 - PRICE, 0, 1000 - PRICE]);
    });

    test('cancel while the upstream refuses early cancellation: 409 cancel_too_early with Retry-After, nothing refunded yet', async () => {
      fakeOptions.cancelableAfterSeconds = 30;
      try {
        const user = await customer(1000);
        const row = await buy(user);
        const early = await user.client.post(`/v1/verifications/${row.id}/cancel`);
        assertProblem(early, 409, 'cancel_too_early');
        assert.equal(early.headers.get('retry-after'), '60');
        assert.deepEqual(await wallet(user), [1000, PRICE, 1000 - PRICE]);
        clock.advance(30_000);
        const done = await user.client.post(`/v1/verifications/${row.id}/cancel`);
        assert.equal(done.status, 200, done.text);
        assert.equal(done.body.state, 'cancelled');
        assert.deepEqual(await wallet(user), [1000, 0, 1000]);
      } finally {
        fakeOptions.cancelableAfterSeconds = 0;
      }
    });

    test('a webhook racing the poller: exactly one capture, one charge, one code_received notification, every round', async () => {
      // The poller is held right after it fetched the SMS from the upstream (fault point
      // capture.fetched); the webhook then arrives before it goes on, together with it, or after it.
      const modes = ['webhook while the poller holds the SMS', 'both at once', 'poller first'] as const;
      const rounds = 18;
      const user = await customer(PRICE * rounds);
      const engineOfServer = app.server.runtime.engine;
      const winners = { webhook: 0, poller: 0 };
      for (let round = 0; round < rounds; round++) {
        const mode = modes[round % modes.length];
        const row = await buy(user);
        const code = String(500000 + round);
        // The SMS is upstream (the poller will find it) and announced by a webhook at the same time.
        const sms = fake.controls.deliverSms(row.providerOrderId!, { text: `Your WhatsApp code is ${code}`, code });
        const raw = envelope(fake.controls.smsWebhookData(sms));
        clock.advance(1000); // the row is due for polling

        let fetched!: () => void;
        let release!: () => void;
        const atFetch = new Promise<void>((resolve) => (fetched = resolve));
        const gate = new Promise<void>((resolve) => (release = resolve));
        faults.once('capture.fetched', async () => {
          fetched();
          await gate;
        });
        const ticking = engineOfServer.tick();
        await atFetch;
        let res: ApiResponse;
        if (mode === 'webhook while the poller holds the SMS') {
          res = await post(raw);
          release();
        } else if (mode === 'both at once') {
          // Let the poller go after a varying number of event-loop turns into the webhook's handling.
          const turns = [0, 2, 5, 10, 20, 40][Math.floor(round / modes.length) % 6]!;
          [res] = await Promise.all([post(raw), afterTurns(turns).then(release)]);
        } else {
          release();
          await ticking;
          res = await post(raw);
        }
        const report = await ticking;

        assert.equal(res.status, 200, res.text);
        assert.ok(['captured', 'recorded'].includes(res.body.status), res.text);
        const byWebhook = res.body.status === 'captured' ? 1 : 0;
        assert.equal(byWebhook + report.captured, 1, `round ${round} (${mode}): exactly one of webhook and poller captured`);
        if (mode === 'webhook while the poller holds the SMS') assert.equal(byWebhook, 1);
        if (mode === 'poller first') assert.equal(report.captured, 1);
        winners[byWebhook ? 'webhook' : 'poller'] += 1;

        const after = await snapshot(user, row.id);
        assert.equal(after.state, 'received');
        assert.equal(after.code, code);
        assert.equal(after.messages, 1, 'the same SMS is stored once');
        assert.equal(after.charges, 1);
        assert.equal(await count(sql`SELECT count(*)::int AS n FROM notifications WHERE verification_id = ${row.id} AND kind = 'code_received'`), 1);
        assert.deepEqual(after.wallet, [PRICE * (rounds - round - 1), 0, PRICE * (rounds - round - 1)]);
      }
      assert.equal(faults.pending(), false);
      assert.ok(winners.webhook > 0 && winners.poller > 0, JSON.stringify(winners));
    });
  });
}

/**
 * The receiver names no vendor: a provider that brings its own webhook capability is served at
 * /webhooks/providers/<its name> without a line of route code. Here the sandbox, given a made-up
 * signing scheme (HMAC-SHA256 in X-Test-Signature) and body, stands for the next seller.
 */
function withMadeUpWebhooks(provider: SandboxProvider, secret: string): Provider {
  const webhooks: ProviderWebhooks = {
    verify: ({ rawBody, headers }) => {
      const given = headers['x-test-signature'];
      const expected = createHmac('sha256', secret).update(rawBody).digest('hex');
      return typeof given === 'string' && given.length === expected.length && timingSafeEqual(Buffer.from(given), Buffer.from(expected));
    },
    parse: (rawBody) => {
      const body = JSON.parse(rawBody.toString('utf8')) as { id?: unknown; at: string; order: string; text: string; code: string };
      if (typeof body.id !== 'string') throw new MalformedWebhookError('no id');
      const at = new Date(body.at);
      return {
        eventId: body.id,
        dedupeKey: null,
        occurredAt: at,
        sms: { providerOrderId: body.order, phoneNumber: null, message: { providerMessageId: `${body.order}#1`, text: body.text, code: body.code, receivedAt: at } },
      };
    },
  };
  return Object.assign(provider, { webhooks });
}

for (const engine of engines) {
  describe(`webhooks of any provider, through the same route [${engine}]`, () => {
    const clock = new ManualClock('2026-03-01T12:00:00Z');
    const secret = randomBytes(16).toString('hex');
    const sandbox = () => new SandboxProvider({ clock, delayMs: 5000, failureRate: 0, ttlSeconds: 600 });
    let app: TestApp;
    let plain: TestApp;

    before(async () => {
      app = await startTestApp({ engine, clock, worker: false, runtime: (ctx) => createVerificationRuntime(ctx, { provider: withMadeUpWebhooks(sandbox(), secret) }) });
      plain = await startTestApp({ engine, clock, worker: false, runtime: (ctx) => createVerificationRuntime(ctx, { provider: sandbox() }) });
    });
    after(async () => {
      await app?.close();
      await plain?.close();
    });

    const sign = (raw: string) => createHmac('sha256', secret).update(raw).digest('hex');

    test('a signed delivery captures the code once; a forged one is 401; a repeat is a duplicate', async () => {
      const admin = await login(app.url, app.admin.email, app.admin.password);
      const user = await registerUser(app.url);
      assert.equal((await admin.client.post(`/v1/admin/users/${user.id}/credit`, { amount_minor: 1000, reason: 'test funds' })).status, 201);
      const bought = await user.client.post('/v1/verifications', { service: 'test_timeout' }, { headers: { 'idempotency-key': randomUUID() } });
      assert.equal(bought.status, 201, bought.text);
      const row = (await loadVerification(app.ctx.database.db, bought.body.id))!;
      const raw = JSON.stringify({ id: 'made-up-1', at: clock.now().toISOString(), order: row.providerOrderId, text: 'Your code is 577215', code: '577215' });
      const post = (body: string, signature: string) =>
        call(app.url, 'POST', '/webhooks/providers/sandbox', { rawBody: body, headers: { 'x-test-signature': signature } });

      assertProblem(await post(raw, sign(`${raw} `)), 401, 'unauthenticated');
      assert.equal((await user.client.get(`/v1/verifications/${row.id}`)).body.state, 'waiting');
      const res = await post(raw, sign(raw));
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.body, { status: 'captured' });
      const view = (await user.client.get(`/v1/verifications/${row.id}`)).body;
      assert.deepEqual([view.state, view.code, view.messages.length], ['received', '577215', 1]);
      assert.deepEqual((await post(raw, sign(raw))).body, { status: 'duplicate' });
      const wallet = (await user.client.get('/v1/wallet')).body;
      assert.deepEqual([wallet.balance_minor, wallet.held_minor], [1000 - row.priceMinor, 0]);
    });

    test('a provider without the capability has no receiver: 404, whatever is sent', async () => {
      const raw = JSON.stringify({ id: 'made-up-2' });
      assertProblem(await call(plain.url, 'POST', '/webhooks/providers/sandbox', { rawBody: raw, headers: { 'x-test-signature': sign(raw) } }), 404, 'not_found');
    });
  });
}
