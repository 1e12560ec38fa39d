import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { loadConfig } from '../../src/config.ts';
import { diagnose } from '../../src/ops/diagnose.ts';
import { createVerificationRuntime, type VerificationRuntime } from '../../src/runtime.ts';
import { cancelVerification } from '../../src/verifications/flows.ts';
import { loadVerification } from '../../src/verifications/lifecycle.ts';
import { purchaseVerification } from '../../src/verifications/purchase.ts';
import { ManualClock } from '../support/clock.ts';
import { engines } from '../support/db.ts';
import { startFakeSmsActivate, type FakeSmsActivate } from '../support/fake-sms-activate.ts';
import { assertLifecycleConsistent } from '../support/lifecycle-invariants.ts';
import { LIFECYCLE_TEST_ENV, lifecycleHarness, START, type LifecycleHarness } from '../support/lifecycle.ts';
import { putProviderCatalogue } from '../support/provider-catalogue.ts';

/**
 * Several upstreams in one process, as an operator configures them: two sellers speaking the
 * SMS-Activate protocol under their own names (`north`, `south`, each a local fake of the protocol)
 * and the sandbox. One goes down mid-run: its breaker opens, purchases move to the other, and its
 * own open orders still settle there once it is back. Then it is removed from PROVIDERS: after a
 * restart its orders are still polled and cancelled there (drain); with its credentials gone too,
 * they are left untouched and diagnose says so.
 */

/** cockatiel times the half-open delay by the wall clock: long enough to buy while open, short enough to wait out. */
const HALF_OPEN_MS = 1500;

const sellerEnv = (name: 'NORTH' | 'SOUTH', fake: FakeSmsActivate): Record<string, string> => ({
  [`PROVIDER_${name}_PROTOCOL`]: 'sms-activate',
  [`PROVIDER_${name}_BASE_URL`]: fake.url,
  [`PROVIDER_${name}_API_KEY`]: 'sa-test-key',
  [`PROVIDER_${name}_REQUESTS_PER_SECOND`]: '0',
  [`PROVIDER_${name}_TIMEOUT_MS`]: '2000',
});

for (const engine of engines) {
  describe(`several upstreams at once, end to end [${engine}]`, () => {
    const clock = new ManualClock(START);
    let north: FakeSmsActivate;
    let south: FakeSmsActivate;
    let h: LifecycleHarness;
    let env: Record<string, string>;
    const runtimes: VerificationRuntime[] = [];

    /** A process started with this configuration (a restart, when called again). */
    const start = (overrides: Record<string, string | undefined>, controls?: { isDisabled(name: string): boolean }): VerificationRuntime => {
      const merged = { ...env, ...overrides };
      const config = loadConfig(Object.fromEntries(Object.entries(merged).filter(([, v]) => v !== undefined)) as Record<string, string>);
      const runtime = createVerificationRuntime({ ...h.ctx, config }, { workerId: `worker-${runtimes.length}`, controls });
      runtimes.push(runtime);
      return runtime;
    };
    const requestsTo = (fake: FakeSmsActivate, action: string, id?: string) =>
      fake.state.requests.filter((r) => r.query.get('action') === action && (id === undefined || r.query.get('id') === id)).length;
    const buy = async (runtime: VerificationRuntime, userId: string) =>
      purchaseVerification(runtime.deps, { userId, idempotencyKey: randomUUID(), service: 'whatsapp', country: 'US' });

    before(async () => {
      north = await startFakeSmsActivate({ clock, balance: 1000, earlyCancelSeconds: 0 });
      south = await startFakeSmsActivate({ clock, balance: 1000, earlyCancelSeconds: 0 });
      env = {
        ...LIFECYCLE_TEST_ENV,
        MAX_ACTIVE_VERIFICATIONS: '1000',
        PURCHASES_PER_MINUTE: '100000',
        BREAKER_FAILURE_THRESHOLD: '3',
        BREAKER_HALF_OPEN_AFTER_MS: String(HALF_OPEN_MS),
        PROVIDERS: 'north,south,sandbox',
        ...sellerEnv('NORTH', north),
        ...sellerEnv('SOUTH', south),
      };
      h = await lifecycleHarness(engine, { clock, env });
      // Whatsapp in the US: north costs 50, south 55, the sandbox 60 (its seeded row); our price is
      // 100. With no history yet the margin ranks them north, south, sandbox.
      await putProviderCatalogue(h.t.database.db, 'north', [{ service: 'whatsapp', priceMinor: 100, costMinor: 50 }]);
      await putProviderCatalogue(h.t.database.db, 'south', [{ service: 'whatsapp', priceMinor: 110, costMinor: 55 }]);
    });
    after(async () => {
      for (const runtime of runtimes) await runtime.engine.stop();
      await h?.dispose();
      await north?.close();
      await south?.close();
    });

    test('one goes down mid-run: its breaker opens, traffic moves, its open orders still settle there', async () => {
      const runtime = start({});
      assert.deepEqual(runtime.providers.active().map((m) => [m.name, m.kind]), [['north', 'sms-activate'], ['south', 'sms-activate'], ['sandbox', 'sandbox']]);
      const user = await h.customer(1000);
      const first = await buy(runtime, user);
      const second = await buy(runtime, user);
      assert.deepEqual([first.row.provider, second.row.provider, first.row.state, second.row.state], ['north', 'north', 'waiting', 'waiting']);
      assert.deepEqual([north.state.purchases, south.state.purchases], [2, 0]);

      // North stops answering: the polls fail until its breaker opens.
      for (const action of ['getStatus', 'getActiveActivations', 'getFullSms'] as const) north.controls.failNext(action, { type: 'status', status: 503, body: 'down' }, 50);
      for (let i = 0; i < 4 && runtime.providers.breaker('north').state() !== 'open'; i++) {
        clock.advance(1_000);
        await runtime.engine.tick();
      }
      assert.equal(runtime.providers.breaker('north').state(), 'open');
      assert.equal(runtime.providers.breaker('south').state(), 'closed');
      // Traffic moves: the next purchase goes to south without asking north.
      const moved = await buy(runtime, user);
      const report = await diagnose({ database: h.t.database, clock, config: runtime.deps.config, providers: runtime.providers });
      assert.equal(report.breakers.north, 'open');
      assert.deepEqual([report.breakers.south, report.breakers.sandbox], ['closed', 'closed']);
      assert.deepEqual([moved.row.provider, moved.row.state], ['south', 'waiting']);
      assert.deepEqual([north.state.purchases, south.state.purchases], [2, 1]);
      assert.deepEqual(await h.wallet(user), [1000, 300, 700]);

      // North is back: its own orders settle there — one delivers its code, one is cancelled.
      north.controls.clearFailures();
      north.controls.deliverSms(first.row.providerOrderId!, { code: '1234' });
      await delay(HALF_OPEN_MS + 100); // the breaker's half-open time passes (cockatiel keeps wall-clock time)
      for (let i = 0; i < 3; i++) {
        clock.advance(1_000);
        await runtime.engine.tick();
      }
      const delivered = (await loadVerification(h.t.database.db, first.row.id))!;
      assert.deepEqual([delivered.state, delivered.code, delivered.provider], ['received', '1234', 'north']);
      assert.equal(runtime.providers.breaker('north').state(), 'closed');
      const cancelled = await cancelVerification(runtime.deps, (await loadVerification(h.t.database.db, second.row.id))!, 'customer');
      assert.equal(cancelled.kind, 'cancelled');
      assert.equal(north.state.activations.get(second.row.providerOrderId!)?.status, 'cancelled', 'the cancel reached north');
      assert.equal(requestsTo(south, 'setStatus', second.row.providerOrderId!), 0, 'never asked at south');
      assert.deepEqual(await h.wallet(user), [900, 100, 800]);
      await assertLifecycleConsistent(h.t.database.db);
    });

    test('no second purchase after an ambiguous outcome: counted at the fake sellers, pending at north, then recovered there', async () => {
      north.controls.clearFailures();
      const runtime = start({});
      const user = await h.customer(1000);
      const [atNorth, atSouth] = [north.state.purchases, south.state.purchases];
      // North sells the number and the answer never comes back: the call times out (ambiguous).
      north.controls.failNext('getNumber', { type: 'hangAfterEffect' });
      north.controls.failNext('getNumberV2', { type: 'hangAfterEffect' });
      const out = await buy(runtime, user);
      assert.deepEqual([out.status, out.row.state, out.row.provider], [202, 'pending', 'north']);
      assert.deepEqual([north.state.purchases - atNorth, south.state.purchases - atSouth], [1, 0], 'bought once, at north only');
      assert.deepEqual(await h.wallet(user), [1000, 100, 900]);
      await runtime.engine.tick();
      assert.equal(south.state.purchases - atSouth, 0, 'nobody buys elsewhere while it is pending');
      // Recovery, once the purchase time is over, finds the order at north by its client reference.
      clock.advance(31_000);
      await runtime.engine.tick();
      const row = (await loadVerification(h.t.database.db, out.row.id))!;
      assert.deepEqual([row.state, row.provider], ['waiting', 'north']);
      assert.deepEqual([north.state.purchases - atNorth, south.state.purchases - atSouth], [1, 0]);
      assert.deepEqual(await h.wallet(user), [1000, 100, 900]);
      // And it is cancelled where it was bought.
      assert.equal((await cancelVerification(runtime.deps, row, 'customer')).kind, 'cancelled');
      assert.equal(north.state.activations.get(row.providerOrderId!)?.status, 'cancelled');
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      await assertLifecycleConsistent(h.t.database.db);
    });

    test('removed from PROVIDERS with open orders: after a restart its polls and cancels still reach it (drain)', async () => {
      north.controls.clearFailures();
      // Whatever the routing has learnt so far, these purchases go to north (the others disabled).
      const onlyNorth = { isDisabled: (name: string) => name !== 'north' };
      const before = start({}, onlyNorth);
      const user = await h.customer(1000);
      const kept = await buy(before, user);
      const toCancel = await buy(before, user);
      assert.deepEqual([kept.row.provider, toCancel.row.provider], ['north', 'north']);
      const purchasesAtNorth = north.state.purchases;

      // Restart without north in the list; its credentials are still configured.
      const after = start({ PROVIDERS: 'south,sandbox' });
      assert.deepEqual(after.providers.active().map((m) => m.name), ['south', 'sandbox']);
      const report = await diagnose({ database: h.t.database, clock, config: after.deps.config, providers: after.providers });
      assert.deepEqual(
        report.providers.map((p) => [p.name, p.mode]),
        [['south', 'active'], ['sandbox', 'active'], ['north', 'drain']],
      );
      assert.equal(report.providers.find((p) => p.name === 'north')?.open_orders, 2);
      assert.ok(report.checks.find((c) => c.name === 'orders_of_unconfigured_providers')?.ok);
      const polls = requestsTo(north, 'getActiveActivations') + requestsTo(north, 'getStatus');
      north.controls.deliverSms(kept.row.providerOrderId!, { code: '5678' });
      clock.advance(1_000);
      await after.engine.tick();
      assert.ok(requestsTo(north, 'getActiveActivations') + requestsTo(north, 'getStatus') > polls, 'polled at north');
      const delivered = (await loadVerification(h.t.database.db, kept.row.id))!;
      assert.deepEqual([delivered.state, delivered.code], ['received', '5678']);
      const cancelled = await cancelVerification(after.deps, (await loadVerification(h.t.database.db, toCancel.row.id))!, 'customer');
      assert.equal(cancelled.kind, 'cancelled');
      assert.equal(north.state.activations.get(toCancel.row.providerOrderId!)?.status, 'cancelled', 'the cancel reached north');

      // No new purchase goes to a drained provider.
      const fresh = await buy(after, user);
      assert.equal(fresh.row.provider, 'south');
      assert.equal(north.state.purchases, purchasesAtNorth);
      // Drained and done: nothing open or owed there any more, so it leaves the report.
      const done = await diagnose({ database: h.t.database, clock, config: after.deps.config, providers: after.providers });
      assert.equal(done.providers.find((p) => p.name === 'north'), undefined);
      await assertLifecycleConsistent(h.t.database.db);
    });

    test('configured nowhere: its orders are left untouched, never refunded, and diagnose fails naming it', async () => {
      const before = start({}, { isDisabled: (name: string) => name !== 'north' });
      const user = await h.customer(1000);
      const stranded = await buy(before, user);
      assert.equal(stranded.row.provider, 'north');
      const seen = north.state.requests.length;

      const after = start({ PROVIDERS: 'south,sandbox', PROVIDER_NORTH_API_KEY: undefined, PROVIDER_NORTH_BASE_URL: undefined, PROVIDER_NORTH_PROTOCOL: undefined });
      // Past its deadline, the engine still does not refund it as if the upstream had answered.
      clock.advance(700_000);
      await after.engine.tick();
      const row = (await loadVerification(h.t.database.db, stranded.row.id))!;
      assert.equal(row.state, 'waiting');
      assert.deepEqual(await h.wallet(user), [1000, 100, 900]);
      assert.equal(north.state.requests.length, seen, 'nothing could reach north');
      const report = await diagnose({ database: h.t.database, clock, config: after.deps.config, providers: after.providers });
      const check = report.checks.find((c) => c.name === 'orders_of_unconfigured_providers')!;
      assert.equal(check.ok, false);
      assert.match(check.detail, /north: \d+ open/);
      assert.equal(report.ok, false);
      assert.equal(report.providers.find((p) => p.name === 'north')?.mode, 'unconfigured');

      // Configured again (drained): the deadline refunds it and the cancel reaches north.
      const back = start({ PROVIDERS: 'south,sandbox' });
      clock.advance(61_000);
      await back.engine.tick();
      const settled = (await loadVerification(h.t.database.db, stranded.row.id))!;
      assert.equal(settled.state, 'expired');
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      clock.advance(1_000);
      await back.engine.tick();
      assert.equal(north.state.activations.get(stranded.row.providerOrderId!)?.status, 'cancelled');
      await assertLifecycleConsistent(h.t.database.db);
    });
  });
}
