/**
 * The whole verification lifecycle through the real SMS-Activate-protocol adapter, against the
 * local fake seller: purchase, capture (one by one and batched through getActiveActivations),
 * cancel (including EARLY_CANCEL_DENIED), deadline, the purchase call's failure modes, recovery
 * from the active-activations list (the protocol has no idempotency key) and orphans found by
 * reconciliation. Time is the harness's ManualClock; the only real wait is the adapter's HTTP
 * timeout in the hang test.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'drizzle-orm';
import type { Clock } from '../../src/clock.ts';
import { rows } from '../../src/db/database.ts';
import { isDomainError, type DomainError } from '../../src/errors.ts';
import { listOffers, syncCatalogue } from '../../src/catalogue/catalogue.ts';
import { reconcile } from '../../src/ops/reconcile.ts';
import { ManualClock } from '../support/clock.ts';
import { loadConfig } from '../../src/config.ts';
import { createProvider } from '../../src/providers/registry.ts';
import { SmsActivateProvider } from '../../src/providers/sms-activate/adapter.ts';
import { deadlineFor } from '../../src/verifications/transitions.ts';
import { cancelVerification } from '../../src/verifications/flows.ts';
import { loadVerification, type VerificationRow } from '../../src/verifications/lifecycle.ts';
import { purchaseVerification } from '../../src/verifications/purchase.ts';
import { engines } from '../support/db.ts';
import { startFakeSmsActivate, type FakeSmsActivate, type FakeSmsActivateOptions } from '../support/fake-sms-activate.ts';
import { lifecycleHarness, type LifecycleHarness } from '../support/lifecycle.ts';
import { putProviderCatalogue } from '../support/provider-catalogue.ts';

const TTL_SECONDS = 600; // the harness's VERIFICATION_TTL_SECONDS
const POLL_MS = 1000; // the harness's POLL_INTERVAL_MS
const BUYS = new Set(['getNumber', 'getNumberV2']);

for (const engine of engines) {
  describe(`SMS-Activate adapter through the lifecycle [${engine}]`, () => {
    let h: LifecycleHarness;
    let fake: FakeSmsActivate;
    // The fake reads earlyCancelSeconds on every request, so a test can change it for a while.
    const fakeOptions: FakeSmsActivateOptions = {
      clock: { now: () => h.clock.now() } satisfies Clock,
      balance: 10_000,
      earlyCancelSeconds: 0,
      prices: {
        '187': { wa: { cost: 0.5, count: 100_000 }, tg: { cost: 0.35, count: 100_000 }, go: { cost: 0.2, count: 0 } },
        '16': { wa: { cost: 0.9, count: 100 } },
      },
    };

    before(async () => {
      fake = await startFakeSmsActivate(fakeOptions);
      const provider = new SmsActivateProvider({
        baseUrl: fake.url,
        apiKey: 'sa-test-key',
        clock: { now: () => h.clock.now() },
        requestsPerSecond: 0,
        timeoutMs: 1500,
      });
      h = await lifecycleHarness(engine, {
        provider,
        env: {
          PROVIDER: 'sms-activate',
          SMS_ACTIVATE_BASE_URL: fake.url,
          SMS_ACTIVATE_API_KEY: 'sa-test-key',
          PROVIDER_REQUESTS_PER_SECOND: '0',
          BREAKER_FAILURE_THRESHOLD: '1000',
          LATE_SMS_WINDOW_SECONDS: '0',
        },
      });
      await putProviderCatalogue(h.t.database.db, 'sms-activate');
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
    const poll = async () => {
      h.clock.advance(POLL_MS);
      return tick();
    };
    /** The actions the fake received while `fn` ran. */
    async function actionsDuring(fn: () => Promise<unknown>): Promise<string[]> {
      const from = fake.state.requests.length;
      await fn();
      return fake.state.requests.slice(from).map((r) => r.query.get('action') ?? '');
    }
    const activation = (row: VerificationRow) => fake.state.activations.get(row.providerOrderId!)!;

    async function count(query: ReturnType<typeof sql>): Promise<number> {
      const [row] = await rows<{ n: number }>(h.t.database.db, query);
      return Number(row?.n ?? 0);
    }
    const charges = (id: string) =>
      count(sql`SELECT count(*)::int AS n FROM ledger_transfers WHERE verification_id = ${id} AND kind = 'verification_charge'`);
    const notices = (id: string, kind: 'code_received' | 'refund_issued') =>
      count(sql`SELECT count(*)::int AS n FROM notifications WHERE verification_id = ${id} AND kind = ${kind}`);
    const messages = (id: string) =>
      rows<{ text: string; code: string | null }>(
        h.t.database.db,
        sql`SELECT text, code FROM verification_messages WHERE verification_id = ${id} ORDER BY received_at`,
      );

    // ---- the happy path ---------------------------------------------------------------------------

    test('buy → waiting with the seller’s activation and deadline; SMS → received, code and full text stored, charged once', async () => {
      const user = await h.customer(1000);
      const purchasesBefore = fake.state.purchases;
      let out!: Awaited<ReturnType<typeof buy>>;
      const sent = await actionsDuring(async () => {
        out = await buy(user, 'happy-1');
      });
      assert.deepEqual(sent, ['getNumberV2']);
      const query = fake.state.requests.at(-1)!.query;
      assert.deepEqual([query.get('service'), query.get('country'), query.get('maxPrice')], ['wa', '187', '0.60']);
      assert.equal(out.status, 201);
      const row = out.row;
      assert.equal(row.state, 'waiting');
      const a = activation(row);
      assert.ok(a, 'the verification points at the seller’s activation');
      assert.equal(row.phoneNumber, a.phone);
      assert.equal(fake.state.purchases, purchasesBefore + 1);
      // The seller states 20 minutes; our 600 s TTL is earlier and wins.
      assert.equal(row.expiresAt.getTime(), row.createdAt.getTime() + TTL_SECONDS * 1000);
      assert.deepEqual(await h.wallet(user), [1000, 80, 920]);

      await poll();
      assert.equal((await current(row.id)).state, 'waiting');

      fake.controls.deliverSms(row.providerOrderId!, { code: '731904', text: 'Your WhatsApp code: 731-904' });
      await poll();
      const done = await current(row.id);
      assert.equal(done.state, 'received');
      assert.equal(done.code, '731904');
      assert.deepEqual(await messages(row.id), [{ text: 'Your WhatsApp code: 731-904', code: '731904' }]);
      assert.deepEqual(await h.wallet(user), [920, 0, 920]);
      assert.equal(await charges(row.id), 1);
      assert.equal(await notices(row.id, 'code_received'), 1);

      await poll();
      assert.deepEqual(await h.wallet(user), [920, 0, 920]);
      assert.equal(await charges(row.id), 1);
    });

    test('batched polling: one getActiveActivations call captures the SMS of several waiting verifications', async () => {
      const alice = await h.customer(1000);
      const bob = await h.customer(1000);
      const bought = [
        (await buy(alice, 'batch-a1')).row,
        (await buy(alice, 'batch-a2', 'telegram')).row,
        (await buy(bob, 'batch-b1')).row,
        (await buy(bob, 'batch-b2')).row,
      ];
      assert.deepEqual(await h.wallet(alice), [1000, 140, 860]);
      assert.deepEqual(await h.wallet(bob), [1000, 160, 840]);

      // A tick with nothing delivered: still a single list call for all four.
      assert.deepEqual(await actionsDuring(poll), ['getActiveActivations']);

      const codes = ['100001', '100002', '100003'];
      bought.slice(0, 3).forEach((row, i) => fake.controls.deliverSms(row.providerOrderId!, { code: codes[i]! }));
      const sent = await actionsDuring(poll);
      assert.deepEqual(sent, ['getActiveActivations'], 'one upstream call for four waiting verifications');
      for (const [i, row] of bought.slice(0, 3).entries()) {
        const done = await current(row.id);
        assert.equal(done.state, 'received');
        assert.equal(done.code, codes[i]);
        assert.equal(await charges(row.id), 1);
      }
      assert.equal((await current(bought[3]!.id)).state, 'waiting');
      assert.deepEqual(await h.wallet(alice), [860, 0, 860]);
      assert.deepEqual(await h.wallet(bob), [920, 80, 840]);

      assert.equal((await cancelVerification(h.deps, bought[3]!, 'customer')).kind, 'cancelled');
      assert.deepEqual(await h.wallet(bob), [920, 0, 920]);
    });

    test('batched polling: an activation missing from the list (the seller closed it after the SMS) is checked on its own in the same tick', async () => {
      const user = await h.customer(1000);
      const first = (await buy(user, 'batch-missing-1')).row;
      const second = (await buy(user, 'batch-missing-2')).row;
      fake.controls.deliverSms(first.providerOrderId!, { code: '424242' });
      activation(first).status = 'finished'; // no longer an "active" activation for the seller
      const sent = await actionsDuring(poll);
      assert.deepEqual(sent, ['getActiveActivations', 'getStatus', 'getFullSms']);
      const done = await current(first.id);
      assert.equal(done.state, 'received');
      assert.equal(done.code, '424242');
      assert.equal((await current(second.id)).state, 'waiting');
      assert.deepEqual(await h.wallet(user), [920, 80, 840]);
      assert.equal((await cancelVerification(h.deps, second, 'customer')).kind, 'cancelled');
      assert.deepEqual(await h.wallet(user), [920, 0, 920]);
    });

    // ---- cancel -----------------------------------------------------------------------------------

    test('cancel: status 8 upstream, refunded once; cancelling again changes nothing', async () => {
      const user = await h.customer(1000);
      const { row } = await buy(user, 'cancel-1');
      const sent = await actionsDuring(async () => {
        const done = await cancelVerification(h.deps, row, 'customer');
        assert.equal(done.kind, 'cancelled');
        assert.equal(done.row.upstreamStatus, 'cancelled');
      });
      assert.deepEqual(sent, ['getStatus', 'setStatus']);
      assert.equal(activation(row).status, 'cancelled', 'the fake shows the activation cancelled');
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      assert.equal(await notices(row.id, 'refund_issued'), 1);
      const again = await actionsDuring(async () => {
        assert.equal((await cancelVerification(h.deps, await current(row.id), 'customer')).kind, 'cancelled');
      });
      assert.deepEqual(again, []);
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
    });

    test('EARLY_CANCEL_DENIED → cancel_too_early with retryAfterSeconds, nothing refunded yet; cancelled once allowed', async () => {
      fakeOptions.earlyCancelSeconds = 120;
      try {
        const user = await h.customer(1000);
        const { row } = await buy(user, 'early-1');
        const early = await cancelVerification(h.deps, row, 'customer');
        assert.equal(early.kind, 'too_early');
        assert.equal(early.kind === 'too_early' && early.retryAfterSeconds, 120);
        assert.equal((await current(row.id)).state, 'waiting');
        assert.equal(activation(row).status, 'waiting');
        assert.deepEqual(await h.wallet(user), [1000, 80, 920]);
        assert.equal(await notices(row.id, 'refund_issued'), 0);

        h.clock.advance(120_000);
        const done = await cancelVerification(h.deps, await current(row.id), 'customer');
        assert.equal(done.kind, 'cancelled');
        assert.equal(activation(row).status, 'cancelled');
        assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      } finally {
        fakeOptions.earlyCancelSeconds = 0;
      }
    });

    test('cancel after the SMS arrived upstream: the customer gets the code, not a refund', async () => {
      const user = await h.customer(1000);
      const { row } = await buy(user, 'cancel-late-1');
      fake.controls.deliverSms(row.providerOrderId!, { code: '909090' });
      const result = await cancelVerification(h.deps, row, 'customer');
      assert.equal(result.kind, 'invalid_state');
      assert.equal(result.row.state, 'received');
      assert.equal(result.row.code, '909090');
      assert.equal(activation(row).status, 'received', 'never set to cancelled upstream');
      assert.deepEqual(await h.wallet(user), [920, 0, 920]);
    });

    // ---- deadline ---------------------------------------------------------------------------------

    test('deadline: one last check, cancelled upstream, expired and refunded', async () => {
      const user = await h.customer(1000);
      const { row } = await buy(user, 'deadline-1');
      h.clock.set(new Date(row.expiresAt.getTime() - 1));
      await tick();
      assert.equal((await current(row.id)).state, 'waiting');
      h.clock.set(row.expiresAt);
      const sent = await actionsDuring(tick);
      assert.deepEqual(sent, ['getStatus', 'getStatus', 'setStatus']);
      const done = await current(row.id);
      assert.equal(done.state, 'expired');
      assert.equal(done.upstreamStatus, 'cancelled');
      assert.equal(activation(row).status, 'cancelled');
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      assert.equal(await charges(row.id), 0);
    });

    // ---- purchase failures ------------------------------------------------------------------------

    test('NO_NUMBERS: 503 no_numbers, not charged, nothing bought', async () => {
      const user = await h.customer(1000);
      const purchasesBefore = fake.state.purchases;
      const error = await buyFails(user, 'no-numbers-1', 'google');
      assert.equal(error.code, 'no_numbers');
      assert.equal(error.status, 503);
      const row = await current(error.extra.verification_id as string);
      assert.equal(row.state, 'failed');
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      assert.equal(fake.state.purchases, purchasesBefore);
    });

    test('429 on getNumberV2: definite, 503 with Retry-After, not charged', async () => {
      const user = await h.customer(1000);
      const purchasesBefore = fake.state.purchases;
      fake.controls.failNext('getNumberV2', { type: 'rateLimit', retryAfter: '5' });
      const error = await buyFails(user, 'rate-limited-1');
      assert.equal(error.code, 'provider_unavailable');
      assert.equal(error.headers['Retry-After'], '5');
      assert.equal((await current(error.extra.verification_id as string)).state, 'failed');
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      assert.equal(fake.state.purchases, purchasesBefore);
    });

    test('5xx and an HTML page on getNumberV2 before anything was sold: 202; the list shows nothing, so after the settle window → failed, refunded', async () => {
      const user = await h.customer(1000);
      const purchasesBefore = fake.state.purchases;
      fake.controls.failNext('getNumberV2', { type: 'status', status: 502, body: 'Bad Gateway', contentType: 'text/plain' });
      const serverError = await buy(user, 'ambiguous-5xx');
      fake.controls.failNext('getNumberV2', { type: 'html', status: 200 });
      const html = await buy(user, 'ambiguous-html', 'telegram');
      for (const out of [serverError, html]) {
        assert.equal(out.status, 202);
        assert.equal(out.row.state, 'pending');
      }
      assert.deepEqual(await h.wallet(user), [1000, 140, 860]);

      const first = await actionsDuring(tick);
      assert.deepEqual(first, ['getActiveActivations', 'getActiveActivations'], 'recovery reads the list, never buys again');
      for (const out of [serverError, html]) assert.equal((await current(out.row.id)).state, 'pending', 'unknown inside the settle window');

      h.clock.advance(120_000);
      const second = await actionsDuring(tick);
      assert.ok(second.every((action) => !BUYS.has(action)));
      for (const out of [serverError, html]) {
        const row = await current(out.row.id);
        assert.equal(row.state, 'failed');
        assert.equal(row.upstreamStatus, 'absent');
        assert.equal(await notices(row.id, 'refund_issued'), 1);
      }
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      assert.equal(fake.state.purchases, purchasesBefore);
    });

    test('connection dropped after the seller sold the number: 202; recovery finds it in getActiveActivations, bought once', async () => {
      const user = await h.customer(1000);
      const purchasesBefore = fake.state.purchases;
      fake.controls.failNext('getNumberV2', { type: 'dropAfterEffect' });
      const out = await buy(user, 'dropped-1');
      assert.equal(out.status, 202);
      assert.equal(fake.state.purchases, purchasesBefore + 1, 'the seller sold it');
      const sold = [...fake.state.activations.values()].at(-1)!;

      const sent = await actionsDuring(tick);
      assert.deepEqual(sent, ['getActiveActivations']);
      const row = await current(out.row.id);
      assert.equal(row.state, 'waiting');
      assert.equal(row.providerOrderId, sold.id);
      assert.equal(row.phoneNumber, sold.phone);
      assert.equal(fake.state.purchases, purchasesBefore + 1, 'never a second purchase');

      fake.controls.deliverSms(sold.id, { code: '585858' });
      await poll();
      assert.equal((await current(row.id)).state, 'received');
      assert.deepEqual(await h.wallet(user), [920, 0, 920]);
      assert.equal(await charges(row.id), 1);
    });

    test('no answer after the sale (adapter timeout): 202, recovered from the list, bought once', async () => {
      const user = await h.customer(1000);
      const purchasesBefore = fake.state.purchases;
      fake.controls.failNext('getNumberV2', { type: 'hangAfterEffect' });
      const out = await buy(user, 'hang-1'); // waits for the adapter's 1.5 s timeout
      assert.equal(out.status, 202);
      await tick();
      const row = await current(out.row.id);
      assert.equal(row.state, 'waiting');
      assert.equal(fake.state.purchases, purchasesBefore + 1);
      assert.equal((await cancelVerification(h.deps, row, 'customer')).kind, 'cancelled');
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
    });

    // ---- orphans and the catalogue ----------------------------------------------------------------

    test('an activation no verification knows is found by activeOrders() and cancelled by reconcile', async () => {
      const orphan = fake.controls.createActivation({ service: 'tg', country: '187', createdAt: new Date(h.clock.now().getTime() - 15 * 60_000) });
      const listed = await h.deps.provider.activeOrders!();
      const entry = listed.find((o) => o.providerOrderId === orphan.id);
      assert.deepEqual(entry && { service: entry.service, phone: entry.phoneNumber }, { service: 'telegram', phone: orphan.phone });

      const dry = await reconcile(h.deps, { days: 1, execute: false });
      const found = dry.found.filter((f) => f.kind === 'upstream_orphan');
      assert.equal(found.length, 1, JSON.stringify(dry.found));
      assert.match(found[0]!.detail, new RegExp(`order ${orphan.id}\\b`));
      assert.equal(orphan.status, 'waiting', 'a dry run changes nothing');

      const run = await reconcile(h.deps, { days: 1, execute: true });
      assert.equal(run.found.filter((f) => f.kind === 'upstream_orphan' && f.repaired).length, 1);
      assert.equal(orphan.status, 'cancelled', 'cancelled upstream');
      const again = await reconcile(h.deps, { days: 1, execute: false });
      assert.equal(again.found.filter((f) => f.kind === 'upstream_orphan').length, 0);
    });

    test('syncCatalogue fills the catalogue from getPrices with a markup, rounded up', async () => {
      const result = await syncCatalogue(h.deps, { markupPercent: 50 });
      assert.equal(result.provider, 'sms-activate');
      const offers = (await listOffers(h.t.database.db, 'sms-activate')).map((o) => [o.country, o.service, o.costMinor, o.priceMinor]);
      // Fake prices: US wa 0.50, tg 0.35, go 0.20; GB wa 0.90; ×1.5 rounded up to a cent.
      assert.deepEqual(offers, [
        ['GB', 'whatsapp', 90, 135],
        ['US', 'google', 20, 30],
        ['US', 'telegram', 35, 53],
        ['US', 'whatsapp', 50, 75],
      ]);
      const user = await h.customer(1000);
      const out = await buy(user, 'synced-1', 'telegram');
      assert.equal(out.row.priceMinor, 53);
      assert.equal(fake.state.requests.filter((r) => BUYS.has(r.query.get('action') ?? '')).at(-1)!.query.get('maxPrice'), '0.35');
      assert.deepEqual(await h.wallet(user), [1000, 53, 947]);
      assert.equal((await cancelVerification(h.deps, out.row, 'customer')).kind, 'cancelled');
    });
  });
}

describe('SMS-Activate as configured (PROVIDER=sms-activate)', () => {
  test('a seller that states no end time is assumed to keep the number 20 minutes, whatever our TTL', async () => {
    const clock = new ManualClock('2026-03-01T12:00:00Z');
    const fake = await startFakeSmsActivate({ clock, statesEndTime: false });
    try {
      for (const ttl of [600, 1800]) {
        const config = loadConfig({
          PROVIDER: 'sms-activate',
          SMS_ACTIVATE_BASE_URL: fake.url,
          SMS_ACTIVATE_API_KEY: 'sa-test-key',
          PROVIDER_REQUESTS_PER_SECOND: '0',
          VERIFICATION_TTL_SECONDS: String(ttl),
        });
        const provider = createProvider(config, clock);
        assert.equal(provider.name, 'sms-activate');
        const now = clock.now();
        const order = await provider.buy({ service: 'whatsapp', country: 'US', maxCostMinor: 60, clientRef: `ttl-${ttl}` });
        assert.equal(order.endsAt?.getTime(), now.getTime() + 1200_000);
        // Our deadline: the TTL when shorter, the seller's 20 minutes when the TTL is longer.
        assert.equal(deadlineFor(now, ttl, order.endsAt).getTime(), now.getTime() + Math.min(ttl, 1200) * 1000);
      }
    } finally {
      await fake.close();
    }
  });
});
