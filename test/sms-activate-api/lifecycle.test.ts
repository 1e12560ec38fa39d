import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'drizzle-orm';
import { rows } from '../../src/db/database.ts';
import type { CancelOutcome, LookupRequest, OrderRef, Provider, PurchaseRequest } from '../../src/providers/provider.ts';
import { createProvider } from '../../src/providers/registry.ts';
import type { SandboxProvider } from '../../src/providers/sandbox.ts';
import { createVerificationRuntime } from '../../src/runtime.ts';
import { engines } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { ManualClock } from '../support/clock.ts';
import { login, openEventStream, type TestUser } from '../support/http.ts';
import { assertLedgerConsistent } from '../support/ledger-invariants.ts';
import { assertLifecycleConsistent } from '../support/lifecycle-invariants.ts';
import { FaultSwitch } from '../support/lifecycle.ts';
import { assertText, protocolCustomer, walletOf, type ProtocolCustomer } from '../support/handler-api.ts';

/**
 * The verification lifecycle driven only through the SMS-Activate protocol, on both engines: the
 * hold at getNumber, the capture when the code arrives, the release on cancel, deadline or failure
 * — with exact wallet amounts, the same history, audit trail, notifications and live events as
 * /v1, and the lifecycle and ledger invariants checked after each.
 */

/** The sandbox, with a cancel answer and a pause before buying that a test can switch on. */
class SwitchableSandbox implements Provider {
  readonly name = 'sandbox' as const;
  cancelAnswer: CancelOutcome | undefined;
  /** While set, purchases wait for it before reaching the sandbox. */
  buyGate: Promise<void> | undefined;

  constructor(readonly sandbox: SandboxProvider) {}
  catalogue() {
    return this.sandbox.catalogue();
  }
  async buy(request: PurchaseRequest) {
    await this.buyGate;
    return this.sandbox.buy(request);
  }
  lookup(request: LookupRequest) {
    return this.sandbox.lookup(request);
  }
  check(order: OrderRef) {
    return this.sandbox.check(order);
  }
  async cancel(providerOrderId: string) {
    return this.cancelAnswer ?? this.sandbox.cancel(providerOrderId);
  }
  balance() {
    return this.sandbox.balance();
  }
}

const TTL_SECONDS = 600;

for (const engine of engines) {
  describe(`SMS-Activate protocol: the lifecycle and the ledger [${engine}]`, () => {
    let app: TestApp;
    let admin: TestUser;
    let upstream: SwitchableSandbox;
    const faults = new FaultSwitch();
    const clock = new ManualClock('2026-03-01T12:00:00Z');

    before(async () => {
      app = await startTestApp({
        engine,
        worker: false,
        clock,
        env: {
          VERIFICATION_TTL_SECONDS: String(TTL_SECONDS),
          PURCHASE_TIMEOUT_SECONDS: '30',
          MAX_ACTIVE_VERIFICATIONS: '100',
          PURCHASES_PER_MINUTE: '100000',
          SANDBOX_FAILURE_RATE: '1',
        },
        runtime: (ctx) => {
          upstream = new SwitchableSandbox(createProvider(ctx.config, ctx.clock) as SandboxProvider);
          return createVerificationRuntime(ctx, { provider: upstream, faults: faults.hook });
        },
      });
      admin = await login(app.url, app.admin.email, app.admin.password);
    });
    after(() => app.close());

    const tick = () => app.server.runtime.engine.tick();

    async function customer(): Promise<ProtocolCustomer> {
      const c = await protocolCustomer(app, admin, 1000);
      // The wallet history orders entries by time: the top-up comes first.
      clock.advance(1000);
      return c;
    }

    const activationOf = (answer: string) => answer.split(':')[1]!;

    async function verificationOf(c: ProtocolCustomer, activationId: string): Promise<any> {
      const [row] = await rows<{ verification_id: string }>(
        app.ctx.database.db,
        sql`SELECT verification_id::text AS verification_id FROM sms_activate_activations WHERE activation_id = ${Number(activationId)}`,
      );
      const read = await c.user.client.get(`/v1/verifications/${row!.verification_id}`);
      assert.equal(read.status, 200);
      return read.body;
    }

    /** The verification's audit trail as `state/actor` steps. */
    const trail = (v: { events: { from: string | null; to: string; actor: string; reason: string | null }[] }) => v.events.map((e) => `${e.to}/${e.actor}`);

    async function history(c: ProtocolCustomer): Promise<[string, number][]> {
      const page = await c.user.client.get('/v1/wallet/transactions');
      return page.body.items.map((i: { type: string; amount_minor: number }) => [i.type, i.amount_minor]);
    }

    const invariantsHold = async (context: string) => {
      await assertLifecycleConsistent(app.ctx.database.db, context);
      await assertLedgerConsistent(app.ctx.database.db, context);
    };

    test('testsuccess: the price is held at getNumber and captured when the code arrives; the same trail and notice as /v1', async () => {
      const c = await customer();
      const answer = assertText(await c.call({ action: 'getNumber', service: 'testsuccess' }), /^ACCESS_NUMBER:\d+:\d{11}$/);
      const id = activationOf(answer);
      assert.deepEqual(await walletOf(c.user), [1000, 50, 950]);
      assertText(await c.call({ action: 'getBalance' }), 'ACCESS_BALANCE:9.50');
      assertText(await c.call({ action: 'getStatus', id }), 'STATUS_WAIT_CODE');

      // The sandbox delivers test_success 800 ms after the purchase; the engine captures it.
      clock.advance(800);
      await tick();
      const v = await verificationOf(c, id);
      assert.equal(v.state, 'received');
      assert.match(v.code, /^\d{6}$/);
      assertText(await c.call({ action: 'getStatus', id }), `STATUS_OK:${v.code}`);
      assert.deepEqual(await walletOf(c.user), [950, 0, 950]);
      assertText(await c.call({ action: 'getBalance' }), 'ACCESS_BALANCE:9.50');
      assert.deepEqual(await history(c), [
        ['verification_charge', 0],
        ['verification_hold', -50],
        ['topup', 1000],
      ]);
      assert.deepEqual(trail(v), ['pending/customer', 'waiting/customer', 'received/poller']);
      const notes = (await c.user.client.get('/v1/notifications')).body.items;
      assert.deepEqual(
        notes.map((n: { kind: string; verification_id: string }) => [n.kind, n.verification_id]),
        [['code_received', v.id]],
      );
      // Completing and cancelling after the capture change nothing.
      assertText(await c.call({ action: 'setStatus', id, status: '6' }), 'ACCESS_ACTIVATION');
      assertText(await c.call({ action: 'setStatus', id, status: '8' }), 'OTP_RECEIVED');
      assert.deepEqual(await walletOf(c.user), [950, 0, 950]);
      await invariantsHold('after a capture through the protocol');
    });

    test('setStatus 8: the hold is released once, shown as a refund, with the refund notice; a second cancel changes nothing', async () => {
      const c = await customer();
      const id = activationOf(assertText(await c.call({ action: 'getNumber', service: 'testtimeout' }), /^ACCESS_NUMBER:/));
      assert.deepEqual(await walletOf(c.user), [1000, 50, 950]);
      clock.advance(1000);
      assertText(await c.call({ action: 'setStatus', id, status: '8' }), 'ACCESS_CANCEL');
      assert.deepEqual(await walletOf(c.user), [1000, 0, 1000]);
      assertText(await c.call({ action: 'setStatus', id, status: '8' }), 'ACCESS_CANCEL');
      assert.deepEqual(await walletOf(c.user), [1000, 0, 1000]);
      assertText(await c.call({ action: 'getStatus', id }), 'STATUS_CANCEL');
      assert.deepEqual(await history(c), [
        ['verification_refund', 50],
        ['verification_hold', -50],
        ['topup', 1000],
      ]);
      const v = await verificationOf(c, id);
      assert.equal(v.refunded, true);
      assert.deepEqual(trail(v), ['pending/customer', 'waiting/customer', 'cancelled/customer']);
      const notes = (await c.user.client.get('/v1/notifications')).body.items;
      assert.deepEqual(
        notes.map((n: { kind: string }) => n.kind),
        ['refund_issued'],
      );
      await invariantsHold('after a cancel through the protocol');
    });

    test('EARLY_CANCEL_DENIED while the upstream refuses an early cancel: the hold stays, a later cancel releases it', async () => {
      const c = await customer();
      const id = activationOf(assertText(await c.call({ action: 'getNumber', service: 'testtimeout' }), /^ACCESS_NUMBER:/));
      upstream.cancelAnswer = { outcome: 'too_early', retryAfterSeconds: 120 };
      try {
        assertText(await c.call({ action: 'setStatus', id, status: '8' }), 'EARLY_CANCEL_DENIED');
        assertText(await c.call({ action: 'setStatus', id, status: '-1' }), 'EARLY_CANCEL_DENIED');
        assert.deepEqual(await walletOf(c.user), [1000, 50, 950]);
        assert.equal((await verificationOf(c, id)).state, 'waiting');
        assertText(await c.call({ action: 'getStatus', id }), 'STATUS_WAIT_CODE');
      } finally {
        upstream.cancelAnswer = undefined;
      }
      clock.advance(120_000);
      assertText(await c.call({ action: 'setStatus', id, status: '8' }), 'ACCESS_CANCEL');
      assert.deepEqual(await walletOf(c.user), [1000, 0, 1000]);
      await invariantsHold('after an early cancel was refused');
    });

    test('testtimeout: at the deadline the hold is released (expired); getStatus says STATUS_CANCEL, a cancel then changes nothing', async () => {
      const c = await customer();
      const id = activationOf(assertText(await c.call({ action: 'getNumber', service: 'testtimeout' }), /^ACCESS_NUMBER:/));
      clock.advance(TTL_SECONDS * 1000 - 1000);
      await tick();
      assertText(await c.call({ action: 'getStatus', id }), 'STATUS_WAIT_CODE');
      assert.deepEqual(await walletOf(c.user), [1000, 50, 950]);
      clock.advance(1000);
      await tick();
      assertText(await c.call({ action: 'getStatus', id }), 'STATUS_CANCEL');
      assert.deepEqual(await walletOf(c.user), [1000, 0, 1000]);
      const v = await verificationOf(c, id);
      assert.equal(v.state, 'expired');
      // The state changes, then the owed upstream cancel's answer, recorded in the same history.
      assert.deepEqual(trail(v), ['pending/customer', 'waiting/customer', 'expired/sweeper', 'expired/sweeper']);
      const settled = v.events.at(-1)!;
      assert.equal(settled.from, 'expired');
      assert.equal(settled.reason, 'owed upstream cancel settled: cancelled');
      const [hold] = await rows<{ outcome: string }>(
        app.ctx.database.db,
        sql`SELECT outcome FROM ledger_hold_outcomes WHERE verification_id = ${v.id}`,
      );
      assert.equal(hold!.outcome, 'expired');
      assertText(await c.call({ action: 'setStatus', id, status: '8' }), 'ACCESS_CANCEL');
      assert.deepEqual(await walletOf(c.user), [1000, 0, 1000]);
      await invariantsHold('after a deadline release');
    });

    test('testnonumbers: NO_NUMBERS, no charge, a failed verification whose hold was released; the same idempotency_key answers the same', async () => {
      const c = await customer();
      assertText(await c.call({ action: 'getNumber', service: 'testnonumbers', idempotency_key: 'nn-1' }), 'NO_NUMBERS');
      assert.deepEqual(await walletOf(c.user), [1000, 0, 1000]);
      assertText(await c.call({ action: 'getNumber', service: 'testnonumbers', idempotency_key: 'nn-1' }), 'NO_NUMBERS');
      const list = (await c.user.client.get('/v1/verifications')).body.items;
      assert.deepEqual(
        list.map((v: { state: string; refunded: boolean }) => [v.state, v.refunded]),
        [['failed', true]],
      );
      // The hold and its release happen in the same instant: their order in the history is not fixed.
      assert.deepEqual((await history(c)).sort(), [
        ['topup', 1000],
        ['verification_hold', -50],
        ['verification_refund', 50],
      ]);
      await invariantsHold('after a purchase that found no numbers');
    });

    test('idempotency_key: a retried getNumber (or getNumberV2) is the same purchase; another request with the key is refused; without a key each call buys', async () => {
      const c = await customer();
      const first = assertText(await c.call({ action: 'getNumber', service: 'wa', idempotency_key: 'bot-run-1' }), /^ACCESS_NUMBER:\d+:\d+$/);
      assertText(await c.call({ action: 'getNumber', service: 'wa', idempotency_key: 'bot-run-1' }), first);
      const v2 = await c.call({ action: 'getNumberV2', service: 'wa', idempotency_key: 'bot-run-1', country: '187' });
      assert.equal(v2.json.activationId, Number(activationOf(first)));
      assert.equal(v2.json.countryCode, '187');
      assert.deepEqual(await walletOf(c.user), [1000, 120, 880]);
      const v = await verificationOf(c, activationOf(first));
      assert.equal(upstream.sandbox.purchases.get(v.id), 1, 'one upstream purchase');

      assertText(await c.call({ action: 'getNumber', service: 'tg', idempotency_key: 'bot-run-1' }), 'IDEMPOTENCY_KEY_REUSED');
      assertText(await c.call({ action: 'getNumber', service: 'wa', country: 'GB', idempotency_key: 'bot-run-1' }), 'IDEMPOTENCY_KEY_REUSED');
      for (const key of ['has space', 'x'.repeat(256), 'naïve']) {
        assertText(await c.call({ action: 'getNumber', service: 'wa', idempotency_key: key }), 'BAD_IDEMPOTENCY_KEY');
      }
      assert.deepEqual(await walletOf(c.user), [1000, 120, 880]);

      // The key /v1 was given answers the same purchase here.
      const viaApi = await c.user.client.post('/v1/verifications', { service: 'telegram', country: 'US' }, { headers: { 'idempotency-key': 'shared' } });
      assert.equal(viaApi.status, 201);
      const replayed = assertText(await c.call({ action: 'getNumber', service: 'tg', idempotency_key: 'shared' }), /^ACCESS_NUMBER:/);
      assert.equal((await verificationOf(c, activationOf(replayed))).id, viaApi.body.id);

      const a = assertText(await c.call({ action: 'getNumber', service: 'testtimeout' }), /^ACCESS_NUMBER:/);
      const b = assertText(await c.call({ action: 'getNumber', service: 'testtimeout' }), /^ACCESS_NUMBER:/);
      assert.notEqual(a, b);
      // wa 120, tg 110 (bought through /v1), two testtimeout at 50.
      assert.deepEqual(await walletOf(c.user), [1000, 330, 670]);
      await invariantsHold('after idempotent purchases');
    });

    test('idempotency_key: 20 identical getNumber calls at once buy once; each answers that number or IDEMPOTENCY_IN_PROGRESS', async () => {
      const c = await customer();
      const answers = await Promise.all(
        Array.from({ length: 20 }, () => c.call({ action: 'getNumber', service: 'testtimeout', idempotency_key: 'burst' })),
      );
      const texts = answers.map((a) => assertText(a, /^(ACCESS_NUMBER:\d+:\d+|IDEMPOTENCY_IN_PROGRESS)$/));
      const numbers = new Set(texts.filter((t) => t.startsWith('ACCESS_NUMBER')));
      assert.equal(numbers.size, 1, texts.join(' '));
      const [count] = await rows<{ n: number }>(app.ctx.database.db, sql`SELECT count(*)::int AS n FROM verifications WHERE user_id = ${c.user.id}`);
      assert.equal(count!.n, 1);
      assert.deepEqual(await walletOf(c.user), [1000, 50, 950]);
      assertText(await c.call({ action: 'getNumber', service: 'testtimeout', idempotency_key: 'burst' }), [...numbers][0]!);
      await invariantsHold('after a burst of identical purchases');
    });

    test('IDEMPOTENCY_IN_PROGRESS while the first call with the key waits for the upstream; then its answer', async () => {
      const c = await customer();
      let release!: () => void;
      upstream.buyGate = new Promise((resolve) => (release = resolve));
      let first: Promise<string>;
      try {
        first = c.call({ action: 'getNumber', service: 'testtimeout', idempotency_key: 'slow' }).then((a) => assertText(a, /^ACCESS_NUMBER:/));
        // The first call is past its hold and at the upstream once the hold shows.
        for (let i = 0; i < 200 && (await walletOf(c.user))[1] === 0; i++) await new Promise((r) => setTimeout(r, 10));
        assert.deepEqual(await walletOf(c.user), [1000, 50, 950]);
        assertText(await c.call({ action: 'getNumber', service: 'testtimeout', idempotency_key: 'slow' }), 'IDEMPOTENCY_IN_PROGRESS');
      } finally {
        upstream.buyGate = undefined;
        release();
      }
      const answer = await first;
      assertText(await c.call({ action: 'getNumber', service: 'testtimeout', idempotency_key: 'slow' }), answer);
      assert.deepEqual(await walletOf(c.user), [1000, 50, 950]);
    });

    test('PURCHASE_PENDING:<id> when the upstream answer was lost: held, not cancellable yet, then the number once recovery finds it', async () => {
      const c = await customer();
      const pending = assertText(await c.call({ action: 'getNumber', service: 'testambiguous', idempotency_key: 'lost' }), /^PURCHASE_PENDING:\d+$/);
      const id = activationOf(pending);
      assert.deepEqual(await walletOf(c.user), [1000, 50, 950]);
      assertText(await c.call({ action: 'getNumber', service: 'testambiguous', idempotency_key: 'lost' }), pending);
      assertText(await c.call({ action: 'getStatus', id }), 'STATUS_WAIT_CODE');
      assertText(await c.call({ action: 'setStatus', id, status: '8' }), 'EARLY_CANCEL_DENIED');
      assert.equal((await verificationOf(c, id)).state, 'pending');

      await tick();
      const v = await verificationOf(c, id);
      assert.equal(v.state, 'waiting');
      assertText(await c.call({ action: 'getNumber', service: 'testambiguous', idempotency_key: 'lost' }), `ACCESS_NUMBER:${id}:${v.phone_number}`);
      assertText(await c.call({ action: 'setStatus', id, status: '8' }), 'ACCESS_CANCEL');
      assert.deepEqual(await walletOf(c.user), [1000, 0, 1000]);
      await invariantsHold('after a lost purchase answer');
    });

    test('ERROR_SQL (HTTP 500) for a failure of ours, with nothing internal in the answer; the purchase is recovered like any other', async () => {
      const c = await customer();
      faults.crashOnce('purchase.held');
      const crashed = await c.call({ action: 'getNumber', service: 'testtimeout' });
      assert.equal(crashed.status, 500);
      assert.equal(crashed.contentType, 'text/plain; charset=utf-8');
      assert.equal(crashed.text, 'ERROR_SQL');
      assert.equal(faults.pending(), false);
      assert.deepEqual(await walletOf(c.user), [1000, 50, 950]);
      await invariantsHold('after a crash between hold and purchase');

      clock.advance(31_000);
      await tick();
      const active = (await c.call({ action: 'getActiveActivations' })).json;
      assert.equal(active.activeActivations.length, 1);
      const id = active.activeActivations[0].activationId;
      assertText(await c.call({ action: 'setStatus', id, status: '8' }), 'ACCESS_CANCEL');
      assert.deepEqual(await walletOf(c.user), [1000, 0, 1000]);
    });

    test('live events: a purchase and a cancel through the protocol reach an open /v1/events stream', { timeout: 30_000 }, async () => {
      const c = await customer();
      const stream = await openEventStream(app.url, c.user.token);
      try {
        await stream.next('ready', () => true);
        const id = activationOf(assertText(await c.call({ action: 'getNumber', service: 'testtimeout' }), /^ACCESS_NUMBER:/));
        const v = await verificationOf(c, id);
        await stream.next('verification', (e) => e.id === v.id && e.state === 'waiting');
        assertText(await c.call({ action: 'setStatus', id, status: '8' }), 'ACCESS_CANCEL');
        await stream.next('verification', (e) => e.id === v.id && e.state === 'cancelled');
        const note = await stream.next('notification', (n) => n.kind === 'refund_issued');
        assert.equal(note.verification_id, v.id);
      } finally {
        stream.close();
      }
    });

    test('afterwards: every lifecycle and ledger invariant holds over everything bought through the protocol', async () => {
      await tick();
      await invariantsHold('at the end');
      const [count] = await rows<{ n: number }>(app.ctx.database.db, sql`SELECT count(*)::int AS n FROM sms_activate_activations`);
      assert.ok(count!.n >= 10, `activations: ${count!.n}`);
    });
  });
}
