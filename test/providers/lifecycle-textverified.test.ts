/**
 * The whole verification lifecycle through the real TextVerified adapter, against the local fake
 * TextVerified API: purchase, capture, cancel, deadline, and every way the purchase call can go
 * wrong (429, 5xx, an HTML page, a dropped connection or a hang after the order was created).
 * Time is the harness's ManualClock (the adapter and the fake read it through `clock` below); the
 * only real wait is the adapter's HTTP timeout in the hang test.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'drizzle-orm';
import type { Clock } from '../../src/clock.ts';
import { rows } from '../../src/db/database.ts';
import { isDomainError, type DomainError } from '../../src/errors.ts';
import { listOffers, priceWithMarkup, syncCatalogue } from '../../src/catalogue/catalogue.ts';
import { TextVerifiedProvider } from '../../src/providers/textverified/adapter.ts';
import { cancelVerification } from '../../src/verifications/flows.ts';
import { loadVerification, type VerificationRow } from '../../src/verifications/lifecycle.ts';
import { purchaseVerification } from '../../src/verifications/purchase.ts';
import { engines } from '../support/db.ts';
import { startFakeTextVerified, type FakeTextVerified, type FakeTextVerifiedOptions } from '../support/fake-textverified.ts';
import { lifecycleHarness, type LifecycleHarness } from '../support/lifecycle.ts';
import { putProviderCatalogue } from '../support/provider-catalogue.ts';

const TTL_SECONDS = 600; // the harness's VERIFICATION_TTL_SECONDS
const POLL_MS = 1000; // the harness's POLL_INTERVAL_MS
const CREATE_PATH = '/api/pub/v2/verifications';

for (const engine of engines) {
  describe(`TextVerified adapter through the lifecycle [${engine}]`, () => {
    let h: LifecycleHarness;
    let fake: FakeTextVerified;
    // The fake reads these options on every request, so a test can change them for a while.
    const fakeOptions: FakeTextVerifiedOptions = {
      clock: { now: () => h.clock.now() } satisfies Clock,
      maxUnfinished: 10_000,
      balance: 10_000,
      verificationLifetimeSeconds: 300,
      cancelableAfterSeconds: 0,
    };

    before(async () => {
      fake = await startFakeTextVerified(fakeOptions);
      const provider = new TextVerifiedProvider({
        baseUrl: fake.url,
        apiUsername: 'operator@example.com',
        apiKey: 'tv-test-key',
        clock: { now: () => h.clock.now() },
        requestsPerSecond: 0,
        timeoutMs: 1500,
      });
      h = await lifecycleHarness(engine, {
        provider,
        env: {
          PROVIDER: 'textverified',
          TEXTVERIFIED_BASE_URL: fake.url,
          TEXTVERIFIED_API_USERNAME: 'operator@example.com',
          TEXTVERIFIED_API_KEY: 'tv-test-key',
          PROVIDER_REQUESTS_PER_SECOND: '0',
          // Ambiguous failures are the point of several tests: keep the breaker out of the way.
          BREAKER_FAILURE_THRESHOLD: '1000',
          LATE_SMS_WINDOW_SECONDS: '0',
        },
      });
      await putProviderCatalogue(h.t.database.db, 'textverified');
    });
    after(async () => {
      await h?.dispose();
      await fake?.close();
    });

    // ---- helpers ----------------------------------------------------------------------------------

    const buy = (userId: string, idempotencyKey: string, service = 'whatsapp') =>
      purchaseVerification(h.deps, { userId, idempotencyKey, service });

    async function buyFails(userId: string, idempotencyKey: string, service = 'whatsapp'): Promise<DomainError> {
      try {
        await buy(userId, idempotencyKey, service);
      } catch (error) {
        assert.ok(isDomainError(error), `expected a DomainError, got ${String(error)}`);
        return error;
      }
      return assert.fail('expected the purchase to fail');
    }

    const current = async (id: string): Promise<VerificationRow> => (await loadVerification(h.t.database.db, id))!;
    const tick = () => h.runtime.engine.tick();
    /** The next poll is due POLL_MS after the last one. */
    const poll = async () => {
      h.clock.advance(POLL_MS);
      return tick();
    };
    const createsFor = (id: string) =>
      fake.state.requests.filter((r) => r.method === 'POST' && r.path === CREATE_PATH && r.headers['idempotency-key'] === id);
    const cancelsOf = (orderId: string) => fake.state.requests.filter((r) => r.method === 'POST' && r.path === `${CREATE_PATH}/${orderId}/cancel`);

    async function count(query: ReturnType<typeof sql>): Promise<number> {
      const [row] = await rows<{ n: number }>(h.t.database.db, query);
      return Number(row?.n ?? 0);
    }
    const charges = (id: string) =>
      count(sql`SELECT count(*)::int AS n FROM ledger_transfers WHERE verification_id = ${id} AND kind = 'verification_charge'`);
    const notices = (id: string, kind: 'code_received' | 'refund_issued') =>
      count(sql`SELECT count(*)::int AS n FROM notifications WHERE verification_id = ${id} AND kind = ${kind}`);
    const messages = (id: string) =>
      rows<{ provider_message_id: string; text: string; code: string | null; late: boolean }>(
        h.t.database.db,
        sql`SELECT provider_message_id, text, code, late FROM verification_messages WHERE verification_id = ${id} ORDER BY received_at`,
      );
    const upstream = (row: VerificationRow) => fake.state.verifications.get(row.providerOrderId!)!;

    // ---- the happy path ---------------------------------------------------------------------------

    test('buy → waiting with the fake’s number and deadline; SMS → received, code stored, charged once', async () => {
      const user = await h.customer(1000);
      const purchasesBefore = fake.state.purchases;
      const out = await buy(user, 'happy-1');
      assert.equal(out.status, 201);
      const row = out.row;
      assert.equal(row.state, 'waiting');
      const order = upstream(row);
      assert.ok(order, 'the verification points at the fake’s order');
      assert.equal(row.phoneNumber, `1${order.number}`);
      assert.equal(fake.state.purchases, purchasesBefore + 1);
      // expires_at = min(endsAt, created_at + TTL): the upstream's 300 s end beats our 600 s TTL.
      assert.equal(row.expiresAt.toISOString(), order.endsAt.toISOString());
      assert.equal(row.expiresAt.getTime(), row.createdAt.getTime() + 300_000);
      // Our verification id is the upstream's Idempotency-Key; the catalogue's cost is the cap.
      const [create] = createsFor(row.id);
      assert.deepEqual(JSON.parse(create!.body), { serviceName: 'whatsapp', capability: 'sms', maxPrice: 1.5 });
      assert.deepEqual(await h.wallet(user), [1000, 200, 800]);

      await poll();
      assert.equal((await current(row.id)).state, 'waiting', 'no SMS yet');

      const sms = fake.controls.deliverSms(row.providerOrderId!, { text: 'Your WhatsApp code is 482913. Do not share it.', code: '482913' });
      await poll();
      const done = await current(row.id);
      assert.equal(done.state, 'received');
      assert.equal(done.code, '482913');
      assert.deepEqual(await messages(row.id), [
        { provider_message_id: sms.id, text: 'Your WhatsApp code is 482913. Do not share it.', code: '482913', late: false },
      ]);
      assert.deepEqual(await h.wallet(user), [800, 0, 800]);
      assert.equal(await charges(row.id), 1);
      assert.equal(await notices(row.id, 'code_received'), 1);

      // Polling again changes nothing: a received verification is not polled, nothing is charged twice.
      await poll();
      await poll();
      assert.deepEqual(await h.wallet(user), [800, 0, 800]);
      assert.equal(await charges(row.id), 1);
      assert.equal((await messages(row.id)).length, 1);
    });

    test('a 429 or 5xx while polling only postpones the check', async () => {
      const user = await h.customer(1000);
      const { row } = await buy(user, 'poll-errors-1');
      fake.controls.deliverSms(row.providerOrderId!, { text: 'code 111222', code: '111222' });
      fake.controls.failNext('details', { type: 'rateLimit', retryAfter: '3' });
      await poll();
      assert.equal((await current(row.id)).state, 'waiting');
      fake.controls.failNext('details', { type: 'status', status: 503, body: 'busy' });
      h.clock.advance(2000); // backoff after one failure
      await tick();
      assert.equal((await current(row.id)).state, 'waiting');
      h.clock.advance(4000); // backoff after two failures
      await tick();
      const done = await current(row.id);
      assert.equal(done.state, 'received');
      assert.equal(done.code, '111222');
      assert.deepEqual(await h.wallet(user), [800, 0, 800]);
      assert.equal(await charges(row.id), 1);
    });

    // ---- cancel -----------------------------------------------------------------------------------

    test('cancel: refused while too early (cancel_too_early, nothing refunded yet), then cancelled upstream and refunded once', async () => {
      fakeOptions.cancelableAfterSeconds = 30;
      try {
        const user = await h.customer(1000);
        const { row } = await buy(user, 'cancel-1');
        const early = await cancelVerification(h.deps, row, 'customer');
        assert.equal(early.kind, 'too_early');
        assert.equal(early.kind === 'too_early' && early.retryAfterSeconds, 60);
        assert.equal((await current(row.id)).state, 'waiting');
        assert.deepEqual(await h.wallet(user), [1000, 200, 800], 'not refunded while the upstream order is live');
        assert.equal(upstream(row).state, 'verificationPending');
        assert.equal(await notices(row.id, 'refund_issued'), 0);

        h.clock.advance(30_000);
        const done = await cancelVerification(h.deps, await current(row.id), 'customer');
        assert.equal(done.kind, 'cancelled');
        assert.equal(done.row.state, 'cancelled');
        assert.equal(done.row.upstreamStatus, 'cancelled');
        assert.equal(upstream(row).state, 'verificationCanceled', 'the fake shows the order cancelled');
        assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
        assert.equal(await notices(row.id, 'refund_issued'), 1);

        const cancelCalls = cancelsOf(row.providerOrderId!).length;
        const again = await cancelVerification(h.deps, done.row, 'customer');
        assert.equal(again.kind, 'cancelled');
        assert.equal(cancelsOf(row.providerOrderId!).length, cancelCalls, 'an idempotent cancel does not call the upstream again');
        assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      } finally {
        fakeOptions.cancelableAfterSeconds = 0;
      }
    });

    test('cancel after the SMS arrived upstream: the customer gets the code, not a refund', async () => {
      const user = await h.customer(1000);
      const { row } = await buy(user, 'cancel-late-1');
      fake.controls.deliverSms(row.providerOrderId!, { text: 'code 555666', code: '555666' });
      const result = await cancelVerification(h.deps, row, 'customer');
      assert.equal(result.kind, 'invalid_state');
      assert.equal(result.row.state, 'received');
      assert.equal(result.row.code, '555666');
      assert.deepEqual(await h.wallet(user), [800, 0, 800]);
      assert.equal(await charges(row.id), 1);
    });

    // ---- deadline ---------------------------------------------------------------------------------

    test('deadline at the upstream’s endsAt: expired, refunded, nothing left owed upstream', async () => {
      const user = await h.customer(1000);
      const { row } = await buy(user, 'deadline-ends-1');
      assert.equal(row.expiresAt.getTime(), row.createdAt.getTime() + 300_000);
      h.clock.set(row.expiresAt);
      await tick();
      const done = await current(row.id);
      assert.equal(done.state, 'expired');
      assert.equal(done.upstreamStatus, 'cancelled'); // the upstream had timed it out itself: nothing to cancel
      assert.equal(upstream(row).state, 'verificationTimedOut');
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      assert.equal(await notices(row.id, 'refund_issued'), 1);
      assert.equal(await charges(row.id), 0);
    });

    test('deadline at our TTL when the upstream would keep the number longer: cancelled upstream, refunded', async () => {
      fakeOptions.verificationLifetimeSeconds = 900;
      try {
        const user = await h.customer(1000);
        const { row } = await buy(user, 'deadline-ttl-1');
        assert.equal(upstream(row).endsAt.getTime(), row.createdAt.getTime() + 900_000);
        assert.equal(row.expiresAt.getTime(), row.createdAt.getTime() + TTL_SECONDS * 1000);
        h.clock.advance(TTL_SECONDS * 1000 - 1);
        await tick();
        assert.equal((await current(row.id)).state, 'waiting', 'not a millisecond early');
        h.clock.set(row.expiresAt);
        await tick();
        const done = await current(row.id);
        assert.equal(done.state, 'expired');
        assert.equal(done.upstreamStatus, 'cancelled');
        assert.equal(upstream(row).state, 'verificationCanceled');
        assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      } finally {
        fakeOptions.verificationLifetimeSeconds = 300;
      }
    });

    // ---- purchase failures ------------------------------------------------------------------------

    test('upstream has no numbers: 503 no_numbers, not charged, nothing bought', async () => {
      const user = await h.customer(1000);
      const purchasesBefore = fake.state.purchases;
      fake.controls.setStock('telegram', 0);
      try {
        const error = await buyFails(user, 'no-numbers-1', 'telegram');
        assert.equal(error.code, 'no_numbers');
        assert.equal(error.status, 503);
        const id = error.extra.verification_id as string;
        const row = await current(id);
        assert.equal(row.state, 'failed');
        assert.equal(row.upstreamStatus, 'absent');
        assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
        assert.equal(fake.state.purchases, purchasesBefore);
        assert.equal(await notices(id, 'refund_issued'), 0, 'the customer was told in the answer');
      } finally {
        fake.controls.setStock('telegram', 1_000_000);
      }
    });

    test('upstream price above the catalogue cap: 422 price_exceeds_max, not charged', async () => {
      const user = await h.customer(1000);
      await putProviderCatalogue(h.t.database.db, 'textverified', [{ service: 'google', priceMinor: 80, costMinor: 40 }]);
      try {
        const error = await buyFails(user, 'cap-1', 'google');
        assert.equal(error.code, 'price_exceeds_max');
        assert.equal(error.status, 422);
        assert.equal(JSON.parse(createsFor(error.extra.verification_id as string)[0]!.body).maxPrice, 0.4);
        assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      } finally {
        await putProviderCatalogue(h.t.database.db, 'textverified', [{ service: 'google', priceMinor: 80, costMinor: 60 }]);
      }
    });

    test('429 on create: a definite failure, 503 with Retry-After, not charged, replayed identically', async () => {
      const user = await h.customer(1000);
      const purchasesBefore = fake.state.purchases;
      fake.controls.failNext('create', { type: 'rateLimit', retryAfter: '7' });
      const error = await buyFails(user, 'rate-limited-1');
      assert.equal(error.code, 'provider_unavailable');
      assert.equal(error.status, 503);
      assert.equal(error.headers['Retry-After'], '7');
      const id = error.extra.verification_id as string;
      assert.equal((await current(id)).state, 'failed');
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      assert.equal(fake.state.purchases, purchasesBefore);

      const replay = await buyFails(user, 'rate-limited-1');
      assert.equal(replay.code, 'provider_unavailable');
      assert.equal(replay.extra.verification_id, id);
      assert.equal(createsFor(id).length, 1, 'a replay never calls the upstream again');
    });

    test('5xx on create: ambiguous → 202 pending; recovery re-asks with the same key (also through a second 5xx) → waiting, bought once', async () => {
      const user = await h.customer(1000);
      const purchasesBefore = fake.state.purchases;
      fake.controls.failNext('create', { type: 'status', status: 503, body: '{"error":"service unavailable"}' }, 2);
      const out = await buy(user, 'server-error-1');
      assert.equal(out.status, 202);
      assert.equal(out.row.state, 'pending');
      assert.deepEqual(await h.wallet(user), [1000, 200, 800], 'the hold stays while the outcome is unknown');

      await tick(); // recovery's lookup meets the second 503: still unknown
      assert.equal((await current(out.row.id)).state, 'pending');
      assert.equal(fake.state.purchases, purchasesBefore);

      h.clock.advance(2000);
      await tick();
      const row = await current(out.row.id);
      assert.equal(row.state, 'waiting');
      assert.equal(row.phoneNumber, `1${upstream(row).number}`);
      assert.equal(fake.state.purchases, purchasesBefore + 1);
      const creates = createsFor(out.row.id);
      assert.equal(creates.length, 3);
      assert.ok(creates.every((r) => r.headers['idempotency-key'] === out.row.id));

      const replay = await buy(user, 'server-error-1');
      assert.equal(replay.status, 202, 'the first answer was 202 and stays 202');
      assert.equal(replay.row.state, 'waiting');

      fake.controls.deliverSms(row.providerOrderId!, { text: 'code 777888', code: '777888' });
      await poll();
      assert.equal((await current(row.id)).state, 'received');
      assert.deepEqual(await h.wallet(user), [800, 0, 800]);
      assert.equal(await charges(row.id), 1);
    });

    test('an HTML error page on create (captive portal 200, gateway 502) is never read as a number: 202, then recovery', async () => {
      const user = await h.customer(1000);
      const purchasesBefore = fake.state.purchases;
      fake.controls.failNext('create', { type: 'html', status: 200 });
      const portal = await buy(user, 'html-200');
      fake.controls.failNext('create', { type: 'html', status: 502 });
      const gateway = await buy(user, 'html-502');
      for (const out of [portal, gateway]) {
        assert.equal(out.status, 202);
        assert.equal(out.row.state, 'pending');
        assert.equal(out.row.phoneNumber, null);
      }
      assert.deepEqual(await h.wallet(user), [1000, 400, 600]);
      assert.equal(fake.state.purchases, purchasesBefore);

      await tick();
      for (const out of [portal, gateway]) {
        const row = await current(out.row.id);
        assert.equal(row.state, 'waiting');
        assert.match(row.phoneNumber ?? '', /^1\d{10}$/);
      }
      assert.equal(fake.state.purchases, purchasesBefore + 2);
      for (const out of [portal, gateway]) assert.equal((await cancelVerification(h.deps, await current(out.row.id), 'customer')).kind, 'cancelled');
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
    });

    test('connection dropped after the upstream created the order: 202, recovery finds the same order by its Idempotency-Key, bought once', async () => {
      const user = await h.customer(1000);
      const purchasesBefore = fake.state.purchases;
      fake.controls.failNext('create', { type: 'dropAfterEffect' });
      const out = await buy(user, 'dropped-1');
      assert.equal(out.status, 202);
      assert.equal(out.row.state, 'pending');
      assert.equal(fake.state.purchases, purchasesBefore + 1, 'the upstream sold the number');
      const record = fake.state.idempotency.get(out.row.id);
      assert.equal(record?.state, 'done');
      const orderId = record?.state === 'done' ? record.verificationId : '';

      await tick();
      const row = await current(out.row.id);
      assert.equal(row.state, 'waiting');
      assert.equal(row.providerOrderId, orderId, 'the very order the upstream created');
      assert.equal(row.phoneNumber, `1${fake.state.verifications.get(orderId)!.number}`);
      assert.equal(fake.state.purchases, purchasesBefore + 1, 'never a second purchase');
      assert.equal(createsFor(out.row.id).length, 2);

      fake.controls.deliverSms(orderId, { text: 'code 246810', code: '246810' });
      await poll();
      const done = await current(out.row.id);
      assert.equal(done.state, 'received');
      assert.equal(done.code, '246810');
      assert.deepEqual(await h.wallet(user), [800, 0, 800]);
      assert.equal(await charges(out.row.id), 1);
    });

    test('no answer after the upstream created the order (adapter timeout): 202, recovered to the same order, bought once', async () => {
      const user = await h.customer(1000);
      const purchasesBefore = fake.state.purchases;
      fake.controls.failNext('create', { type: 'hangAfterEffect' });
      const out = await buy(user, 'hang-1'); // waits for the adapter's 1.5 s timeout
      assert.equal(out.status, 202);
      assert.match(out.row.failureReason ?? '', /no answer within 1500 ms/);
      await tick();
      const row = await current(out.row.id);
      assert.equal(row.state, 'waiting');
      assert.equal(fake.state.purchases, purchasesBefore + 1);
      assert.equal((await cancelVerification(h.deps, row, 'customer')).kind, 'cancelled');
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
    });

    test('recovery proves the purchase absent (the key unused, now no numbers): failed, refunded, nothing bought', async () => {
      const user = await h.customer(1000);
      const purchasesBefore = fake.state.purchases;
      fake.controls.failNext('create', { type: 'drop' }); // cut before anything happened
      const out = await buy(user, 'absent-1', 'telegram');
      assert.equal(out.status, 202);
      fake.controls.setStock('telegram', 0);
      try {
        await tick();
      } finally {
        fake.controls.setStock('telegram', 1_000_000);
      }
      const row = await current(out.row.id);
      assert.equal(row.state, 'failed');
      assert.equal(row.upstreamStatus, 'absent');
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      assert.equal(await notices(row.id, 'refund_issued'), 1, 'a refund issued in the background is notified');
      assert.equal(fake.state.purchases, purchasesBefore);
    });

    test('recovery that cannot tell (409 IdempotencyConflict) until the deadline: failed, refunded, kept as a suspected orphan', async () => {
      const user = await h.customer(1000);
      fake.controls.failNext('create', { type: 'status', status: 500, body: 'oops' });
      const out = await buy(user, 'unknown-1');
      assert.equal(out.status, 202);
      fake.controls.setIdempotencyState(out.row.id, 'running');
      try {
        await tick();
        assert.equal((await current(out.row.id)).state, 'pending');
        assert.deepEqual(await h.wallet(user), [1000, 200, 800]);
        h.clock.set(out.row.expiresAt);
        await tick();
      } finally {
        fake.state.idempotency.delete(out.row.id);
      }
      const row = await current(out.row.id);
      assert.equal(row.state, 'failed');
      assert.equal(row.upstreamStatus, 'orphan_suspected');
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
    });

    // ---- the catalogue ----------------------------------------------------------------------------

    test('syncCatalogue fills the catalogue from the upstream’s prices with a markup, rounded up; a purchase then uses it', async () => {
      // An operator's edits: a display name, an offer switched off.
      await putProviderCatalogue(h.t.database.db, 'textverified', [
        { service: 'whatsapp', name: 'WhatsApp', priceMinor: 200, costMinor: 150 },
        { service: 'telegram', priceMinor: 120, costMinor: 100, enabled: false },
      ]);
      const result = await syncCatalogue(h.deps, { markupPercent: 30 });
      assert.equal(result.provider, 'textverified');
      assert.deepEqual(result.skipped, []);
      assert.equal(result.offers.length, 3);
      const stored = await rows<{ service: string; country: string; name: string; cost_minor: number; price_minor: number; enabled: boolean }>(
        h.t.database.db,
        sql`SELECT service, country, name, cost_minor::int, price_minor::int, enabled FROM services WHERE provider = 'textverified' ORDER BY service`,
      );
      // Fake prices: google 0.50, telegram 0.75, whatsapp 1.25; ×1.30 rounded up to a cent.
      assert.deepEqual(
        stored.map((o) => [o.service, o.country, o.name, o.cost_minor, o.price_minor, o.enabled]),
        [
          ['google', 'US', 'google', 50, 65, true],
          ['telegram', 'US', 'telegram', 75, 98, false],
          ['whatsapp', 'US', 'WhatsApp', 125, 163, true],
        ],
      );
      assert.deepEqual(
        (await listOffers(h.t.database.db, 'textverified')).map((o) => o.service),
        ['google', 'whatsapp'],
        'a switched-off offer stays off',
      );
      const user = await h.customer(1000);
      const out = await buy(user, 'synced-1');
      assert.equal(out.row.priceMinor, 163);
      assert.equal(JSON.parse(createsFor(out.row.id)[0]!.body).maxPrice, 1.25);
      assert.deepEqual(await h.wallet(user), [1000, 163, 837]);
      assert.equal((await cancelVerification(h.deps, out.row, 'customer')).kind, 'cancelled');
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
    });
  });
}

describe('catalogue markup arithmetic', () => {
  test('price = cost × (1 + markup%), rounded up to a whole minor unit, in integers', () => {
    assert.equal(priceWithMarkup(125, 30), 163); // 162.5
    assert.equal(priceWithMarkup(75, 30), 98); // 97.5
    assert.equal(priceWithMarkup(50, 30), 65); // exact
    assert.equal(priceWithMarkup(100, 0), 100);
    assert.equal(priceWithMarkup(1, 1), 2); // 1.01
    assert.equal(priceWithMarkup(199, 50), 299); // 298.5
    assert.equal(priceWithMarkup(10, 200), 30);
    assert.equal(priceWithMarkup(3, 33), 4); // 3.99
    assert.equal(priceWithMarkup(2 ** 52, 1), 4548635623644201); // exact far beyond float-safe products
    for (const markup of [-1, 12.5, Number.NaN]) assert.throws(() => priceWithMarkup(100, markup), RangeError);
    for (const cost of [0, -5, 1.5]) assert.throws(() => priceWithMarkup(cost, 10), RangeError);
    assert.throws(() => priceWithMarkup(Number.MAX_SAFE_INTEGER, 10), RangeError);
  });
});
