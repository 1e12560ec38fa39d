/**
 * The provider contract: one suite every adapter runs (test/support/provider-contract.ts lists
 * them — the sandbox, TextVerified, and the SMS-Activate protocol in each seller's dialect), each
 * against its fake upstream speaking the real wire format, through the whole lifecycle on both
 * database engines. Purchase, capture, cancel, deadline, every way the purchase call can go wrong,
 * recovery without buying twice, orphans, the catalogue, and what the breaker must not count.
 * A scenario is registered only for the subjects it applies to (the sandbox has no wire to script;
 * a comment says which condition leaves a subject out), so none is reported as skipped.
 *
 * Time is the harness's ManualClock, shared with the fakes; the only real waits are the adapters'
 * 500 ms HTTP timeout in the hang scenario and millisecond back-offs after a scripted 429.
 */
import { describe, test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'drizzle-orm';
import { rows } from '../../src/db/database.ts';
import { isDomainError, type DomainError } from '../../src/errors.ts';
import { listOffers, priceWithMarkup, syncCatalogue } from '../../src/catalogue/catalogue.ts';
import { reconcile } from '../../src/ops/reconcile.ts';
import { createBreaker, withBreaker } from '../../src/providers/breaker.ts';
import { ProviderError } from '../../src/providers/provider.ts';
import { cancelVerification } from '../../src/verifications/flows.ts';
import { loadVerification, recordMessages, type VerificationRow } from '../../src/verifications/lifecycle.ts';
import { purchaseVerification } from '../../src/verifications/purchase.ts';
import { ManualClock } from '../support/clock.ts';
import { engines } from '../support/db.ts';
import { lifecycleHarness, type LifecycleHarness } from '../support/lifecycle.ts';
import { putProviderCatalogue } from '../support/provider-catalogue.ts';
import { contractSubjects, type ContractCall, type ContractSubject, type ContractUpstream } from '../support/provider-contract.ts';

const TTL_MS = 600_000; // the harness's VERIFICATION_TTL_SECONDS
const POLL_MS = 1000; // the harness's POLL_INTERVAL_MS
const SETTLE_MS = 120_000; // SMS-Activate lookup: "not listed yet" is unknown this long

/**
 * The optional hooks each subject's upstream offers, read from one instance started and closed
 * before any scenario is registered: a scenario that needs a hook a subject lacks is not
 * registered for it at all.
 */
const offered = new Map<string, ReadonlySet<string>>();
for (const subject of contractSubjects) {
  const probe = await subject.start(new ManualClock());
  offered.set(subject.label, new Set(Object.entries(probe).filter(([, value]) => value !== undefined).map(([hook]) => hook)));
  await probe.close();
}

for (const subject of contractSubjects) {
  for (const engine of engines) {
    describe(`provider contract: ${subject.label} [${engine}]`, () => contract(subject, engine));
  }
}

function contract(subject: ContractSubject, engine: (typeof engines)[number]): void {
  let h: LifecycleHarness;
  let up: ContractUpstream;
  const { main, alt, soldOut, quiet } = subject.services;

  before(async () => {
    // The harness is built with the provider, the provider with the harness's clock: tie the knot lazily.
    const clock = { now: () => h.clock.now(), set: (at: Date) => h.clock.set(at) };
    up = await subject.start(clock);
    h = await lifecycleHarness(engine, {
      provider: up.provider,
      env: {
        ...subject.env,
        // Ambiguous failures are the point of several scenarios: the breaker has its own ones below.
        BREAKER_FAILURE_THRESHOLD: '1000',
        LATE_SMS_WINDOW_SECONDS: '0',
      },
    });
  });
  after(async () => {
    await h?.dispose();
    await up?.close();
  });

  // Each scenario starts after every earlier verification's deadline and every upstream order's
  // life, with the subject's catalogue as written below and the upstream back to normal.
  beforeEach(async () => {
    up.reset();
    h.clock.advance(2 * TTL_MS + 60_000);
    for (let i = 0; i < 10; i += 1) {
      const report = await tick();
      if (report.polled + report.expired + report.recovered + report.settled + report.captured === 0) break;
    }
    await putProviderCatalogue(h.t.database.db, subject.providerName, subject.offers);
  });

  // ---- helpers ------------------------------------------------------------------------------------

  const offer = (service: string) => subject.offers.find((o) => o.service === service && (o.country ?? 'US') === 'US')!;
  const price = (service: string) => offer(service).priceMinor;
  const cost = (service: string) => offer(service).costMinor;
  const buy = (userId: string, idempotencyKey: string, service = main) => purchaseVerification(h.deps, { userId, idempotencyKey, service });

  async function buyFails(userId: string, idempotencyKey: string, service = main): Promise<DomainError> {
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
  /** The upstream calls made while `fn` ran. */
  async function callsDuring(fn: () => Promise<unknown>): Promise<ContractCall[]> {
    const from = up.calls().length;
    await fn();
    return up.calls().slice(from);
  }
  /** Whether this subject's upstream offers every hook named (probed before registering, below). */
  const has = (...hooks: (keyof ContractUpstream)[]): boolean => hooks.every((hook) => offered.get(subject.label)!.has(hook));
  /** A scenario registered only for the subjects it applies to: nothing is reported as skipped. */
  const scenario = (name: string, applies: boolean, fn: () => Promise<void>): void => {
    if (applies) test(name, fn);
  };
  /** Deadline of a purchase made at `createdAt`: our TTL, or the upstream's earlier end. */
  const deadlineOf = (createdAt: Date) =>
    createdAt.getTime() + Math.min(TTL_MS, subject.lifetimeSeconds === null ? Infinity : subject.lifetimeSeconds * 1000);

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

  /** Recovery of purchases that never reached the upstream (not bought on retry), to its end. */
  async function recoverUnsold(...ids: string[]): Promise<VerificationRow[]> {
    await tick();
    const first = await Promise.all(ids.map(current));
    for (const row of first) assert.equal(row.state, 'pending', 'nothing decided while the upstream may still be working');
    if (subject.unsoldRecovery === 'absent') h.clock.advance(SETTLE_MS);
    else h.clock.set(first[0]!.expiresAt);
    await tick();
    return Promise.all(ids.map(current));
  }

  /** A purchase whose answer was lost after the sale, recovered (or given up at the deadline). */
  async function resolveLostPurchase(user: string, id: string, soldBefore: number): Promise<void> {
    const P = price(main);
    const sold = up.lastSold();
    assert.equal(up.sold(), soldBefore + 1, 'the upstream sold the number');
    assert.deepEqual(await h.wallet(user), [1000, P, 1000 - P], 'the hold stays while the outcome is unknown');
    const buysDuring = (await callsDuring(tick)).filter((c) => c === 'buy');
    assert.deepEqual(buysDuring, [...(subject.unsoldRecovery === 'bought' ? ['buy' as const] : [])], 'recovery never buys blindly');
    const row = await current(id);
    assert.equal(up.sold(), soldBefore + 1, 'never a second purchase');
    if (!subject.findsLostOrders) {
      // Nothing can find the order: the customer is refunded at the deadline, the order suspected.
      assert.equal(row.state, 'pending');
      h.clock.set(row.expiresAt);
      await tick();
      const given = await current(id);
      assert.equal(given.state, 'failed');
      assert.equal(given.upstreamStatus, 'orphan_suspected');
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      return;
    }
    assert.equal(row.state, 'waiting');
    assert.equal(row.providerOrderId, sold, 'the very order the upstream sold');
    const shown = up.deliver(sold, row.createdAt, { code: '246810', text: 'Your code is 246810' });
    await poll();
    const done = await current(id);
    assert.equal(done.state, 'received');
    assert.equal(done.code, shown.code);
    assert.deepEqual(await h.wallet(user), [1000 - P, 0, 1000 - P]);
    assert.equal(await charges(id), 1);
  }

  // ---- the happy path -------------------------------------------------------------------------------

  test('a purchase gets the upstream’s number and deadline; the SMS captures the hold once; polling again changes nothing', async () => {
    const user = await h.customer(1000);
    const P = price(main);
    const soldBefore = up.sold();
    let out!: Awaited<ReturnType<typeof buy>>;
    const calls = await callsDuring(async () => {
      out = await buy(user, 'happy');
    });
    if (subject.providerName !== 'sandbox') {
      assert.equal(calls.filter((c) => c === 'buy').length, 1, 'one purchase request, in an action the seller serves');
    }
    assert.equal(out.status, 201);
    const row = out.row;
    assert.equal(row.state, 'waiting');
    assert.equal(up.sold(), soldBefore + 1);
    const orderId = row.providerOrderId!;
    assert.equal(orderId, up.lastSold());
    if (subject.providerName !== 'sandbox') {
      assert.equal(row.phoneNumber, up.orderPhone(orderId));
      assert.equal(up.orderState(orderId), 'waiting');
    }
    assert.equal(row.expiresAt.getTime(), deadlineOf(row.createdAt), 'expires_at = min(the upstream’s end, created_at + TTL)');
    if (up.lastPurchaseCap) assert.equal(up.lastPurchaseCap(), cost(main) / 100, 'the catalogue’s cost went upstream as the cap');
    assert.deepEqual(await h.wallet(user), [1000, P, 1000 - P]);

    await poll();
    assert.equal((await current(row.id)).state, 'waiting', 'no SMS yet');

    const shown = up.deliver(orderId, row.createdAt, { code: '482913', text: 'Your code is 482913. Do not share it.' });
    await poll();
    const done = await current(row.id);
    assert.equal(done.state, 'received');
    assert.equal(done.code, shown.code);
    const stored = await messages(row.id);
    assert.deepEqual(
      stored.map((m) => [m.text, m.code, m.late]),
      [[shown.text, shown.code, false]],
    );
    assert.deepEqual(await h.wallet(user), [1000 - P, 0, 1000 - P]);
    assert.equal(await charges(row.id), 1);
    assert.equal(await notices(row.id, 'code_received'), 1);

    // A received verification is not polled for its charge again: nothing changes.
    await poll();
    await poll();
    assert.deepEqual(await h.wallet(user), [1000 - P, 0, 1000 - P]);
    assert.equal(await charges(row.id), 1);
    assert.equal((await messages(row.id)).length, 1);
  });

  scenario('a 429 or a 5xx while polling only postpones the check', has('failNext'), async () => {
    const user = await h.customer(1000);
    const P = price(main);
    const { row } = await buy(user, 'poll-errors');
    const shown = up.deliver(row.providerOrderId!, row.createdAt, { code: '111222', text: 'code 111222' });
    up.failNext!('status', { type: 'rateLimit', retryAfter: '3' });
    await poll();
    assert.equal((await current(row.id)).state, 'waiting');
    up.failNext!('status', { type: 'status', status: 503, body: 'busy', contentType: 'text/plain' });
    h.clock.advance(2000); // the back-off after one failure
    await tick();
    assert.equal((await current(row.id)).state, 'waiting');
    h.clock.advance(4000); // after two
    await tick();
    const done = await current(row.id);
    assert.equal(done.state, 'received');
    assert.equal(done.code, shown.code);
    assert.deepEqual(await h.wallet(user), [1000 - P, 0, 1000 - P]);
    assert.equal(await charges(row.id), 1);
  });

  // ---- cancel ---------------------------------------------------------------------------------------

  scenario('cancel: refused while too early (nothing refunded yet), then cancelled upstream and refunded once; again calls nobody', has('setEarlyCancel'), async () => {
    up.setEarlyCancel!(30);
    const user = await h.customer(1000);
    const P = price(main);
    const { row } = await buy(user, 'cancel-early');
    const early = await cancelVerification(h.deps, row, 'customer');
    assert.equal(early.kind, 'too_early');
    assert.equal(early.kind === 'too_early' && early.retryAfterSeconds, subject.earlyCancelRetryAfter(30));
    assert.equal((await current(row.id)).state, 'waiting');
    assert.deepEqual(await h.wallet(user), [1000, P, 1000 - P], 'not refunded while the upstream order is live');
    assert.equal(up.orderState(row.providerOrderId!), 'waiting');
    assert.equal(await notices(row.id, 'refund_issued'), 0);

    h.clock.advance(30_000);
    const done = await cancelVerification(h.deps, await current(row.id), 'customer');
    assert.equal(done.kind, 'cancelled');
    assert.equal(done.row.state, 'cancelled');
    assert.equal(done.row.upstreamStatus, 'cancelled');
    assert.equal(up.orderState(row.providerOrderId!), 'cancelled', 'the upstream shows the order cancelled');
    assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
    assert.equal(await notices(row.id, 'refund_issued'), 1);

    const again = await callsDuring(async () => {
      assert.equal((await cancelVerification(h.deps, done.row, 'customer')).kind, 'cancelled');
    });
    assert.deepEqual(again, [], 'an idempotent cancel does not call the upstream again');
    assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
  });

  // Not where its cancel cannot know an SMS arrived.
  scenario('cancel after the SMS arrived upstream: the customer gets the code, not a refund', subject.cancelSeesDelivery, async () => {
    const user = await h.customer(1000);
    const P = price(main);
    const { row } = await buy(user, 'cancel-late');
    const shown = up.deliver(row.providerOrderId!, row.createdAt, { code: '555666', text: 'code 555666' });
    const result = await cancelVerification(h.deps, row, 'customer');
    assert.equal(result.kind, 'invalid_state');
    assert.equal(result.row.state, 'received');
    assert.equal(result.row.code, shown.code);
    assert.equal(up.orderState(row.providerOrderId!), 'received', 'never cancelled upstream');
    assert.deepEqual(await h.wallet(user), [1000 - P, 0, 1000 - P]);
    assert.equal(await charges(row.id), 1);
  });

  // ---- deadline -------------------------------------------------------------------------------------

  test('deadline: not a millisecond early; then expired, refunded once, nothing left owed upstream', async () => {
    const user = await h.customer(1000);
    const P = price(quiet);
    const { row } = await buy(user, 'deadline', quiet);
    assert.equal(row.expiresAt.getTime(), deadlineOf(row.createdAt));
    h.clock.set(new Date(row.expiresAt.getTime() - 1));
    await tick();
    assert.equal((await current(row.id)).state, 'waiting');
    assert.deepEqual(await h.wallet(user), [1000, P, 1000 - P]);
    h.clock.set(row.expiresAt);
    await tick();
    const done = await current(row.id);
    assert.equal(done.state, 'expired');
    assert.equal(done.upstreamStatus, 'cancelled', 'cancelled upstream, or already closed by the upstream itself');
    assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
    assert.equal(await notices(row.id, 'refund_issued'), 1);
    assert.equal(await charges(row.id), 0);
    if (subject.providerName !== 'sandbox') {
      const bound = subject.lifetimeSeconds !== null && subject.lifetimeSeconds * 1000 < TTL_MS;
      // At our TTL we cancel a live order; at the upstream's own end it has closed it already.
      assert.ok(
        (bound ? ['expired', 'cancelled'] : ['cancelled']).includes(up.orderState(row.providerOrderId!)),
        `upstream order ${up.orderState(row.providerOrderId!)}`,
      );
    }
  });

  // Not where the upstream keeps numbers shorter than our TTL and its lifetime cannot be set.
  const keepsLonger = subject.lifetimeSeconds === null || subject.lifetimeSeconds * 1000 > TTL_MS;
  scenario('deadline at our TTL when the upstream would keep the number longer: cancelled upstream, refunded', keepsLonger || has('setLifetime'), async () => {
    const longer = keepsLonger;
    if (!longer) up.setLifetime!(900);
    const user = await h.customer(1000);
    const { row } = await buy(user, 'deadline-ttl', quiet);
    assert.equal(row.expiresAt.getTime(), row.createdAt.getTime() + TTL_MS);
    h.clock.set(row.expiresAt);
    const calls = await callsDuring(tick);
    // The refund never waits for the upstream: the deadline batch takes its last look in one list
    // call where the upstream can list its orders (none otherwise), and the cancel is owed work.
    if (subject.providerName !== 'sandbox') {
      assert.deepEqual(calls, subject.batchesPolls ? ['list', 'status', 'cancel'] : ['cancel'], 'a last look where the upstream can list, then the cancel');
    }
    const done = await current(row.id);
    assert.equal(done.state, 'expired');
    assert.equal(done.upstreamStatus, 'cancelled');
    if (subject.providerName !== 'sandbox') assert.equal(up.orderState(row.providerOrderId!), 'cancelled');
    assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
  });

  // ---- purchase failures --------------------------------------------------------------------------

  test('the upstream has no numbers: 503 no_numbers, not charged, nothing bought', async () => {
    const user = await h.customer(1000);
    const soldBefore = up.sold();
    const error = await buyFails(user, 'no-numbers', soldOut);
    assert.equal(error.code, 'no_numbers');
    assert.equal(error.status, 503);
    const id = error.extra.verification_id as string;
    const row = await current(id);
    assert.equal(row.state, 'failed');
    assert.equal(row.upstreamStatus, 'absent');
    assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
    assert.equal(up.sold(), soldBefore);
    assert.equal(await notices(id, 'refund_issued'), 0, 'the customer was told in the answer');
  });

  // Not where it has no price cap to exceed.
  scenario('the upstream’s price is above the catalogue cap: 422 price_exceeds_max, not charged, nothing bought', subject.services.overCap !== undefined, async () => {
    const overCap = subject.services.overCap!;
    const user = await h.customer(1000);
    const soldBefore = up.sold();
    const error = await buyFails(user, 'over-cap', overCap);
    assert.equal(error.code, 'price_exceeds_max');
    assert.equal(error.status, 422);
    if (up.lastPurchaseCap) assert.equal(up.lastPurchaseCap(), cost(overCap!) / 100);
    assert.equal((await current(error.extra.verification_id as string)).state, 'failed');
    assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
    assert.equal(up.sold(), soldBefore);
  });

  test('a purchase refused before anything happened (rate limit, provider error): 503, not charged, replayed without calling again', async () => {
    const user = await h.customer(1000);
    const soldBefore = up.sold();
    const refusal = up.refuseNextPurchase();
    const error = await buyFails(user, 'refused', refusal.service);
    assert.equal(error.code, 'provider_unavailable');
    assert.equal(error.status, 503);
    assert.equal(error.headers['Retry-After'], refusal.retryAfter ?? undefined);
    const id = error.extra.verification_id as string;
    assert.equal((await current(id)).state, 'failed');
    assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
    assert.equal(up.sold(), soldBefore);

    const calls = await callsDuring(async () => {
      const replay = await buyFails(user, 'refused', refusal.service);
      assert.equal(replay.code, 'provider_unavailable');
      assert.equal(replay.extra.verification_id, id);
    });
    assert.deepEqual(calls, [], 'a replay never calls the upstream again');
  });

  test('the answer is lost after the upstream sold the number: 202, recovery finds that very order, bought once', async () => {
    const user = await h.customer(1000);
    const soldBefore = up.sold();
    const service = up.loseNextAnswer();
    const out = await buy(user, 'lost-answer', service);
    assert.equal(out.status, 202);
    assert.equal(out.row.state, 'pending');
    assert.equal(out.row.phoneNumber, null);
    await resolveLostPurchase(user, out.row.id, soldBefore);
  });

  scenario('no answer at all after the sale (the adapter’s timeout): 202, then resolved like a lost answer', has('failNext'), async () => {
    const user = await h.customer(1000);
    const soldBefore = up.sold();
    up.failNext!('buy', { type: 'hangAfterEffect' });
    const out = await buy(user, 'hang'); // waits for the adapter's 500 ms timeout
    assert.equal(out.status, 202);
    assert.match(out.row.failureReason ?? '', /no answer within 500 ms/);
    await resolveLostPurchase(user, out.row.id, soldBefore);
  });

  scenario('a purchase that never reached the seller (5xx, an HTML page): 202; recovery never buys blindly', has('failNext'), async () => {
    const user = await h.customer(1000);
    const soldBefore = up.sold();
    // With an idempotency key the retry may meet a second 5xx first: still unknown, still one purchase.
    up.failNext!('buy', { type: 'html', status: 502 }, subject.unsoldRecovery === 'bought' ? 2 : 1);
    const gateway = await buy(user, 'unsold-5xx');
    up.failNext!('buy', { type: 'html', status: 200 });
    const portal = await buy(user, 'unsold-html', alt);
    for (const out of [gateway, portal]) {
      assert.equal(out.status, 202);
      assert.equal(out.row.state, 'pending');
      assert.equal(out.row.phoneNumber, null, 'an HTML page is never read as a number');
    }
    const held = price(main) + price(alt);
    assert.deepEqual(await h.wallet(user), [1000, held, 1000 - held]);
    assert.equal(up.sold(), soldBefore);

    if (subject.unsoldRecovery === 'bought') {
      await tick(); // one retry meets the second 502 (whichever the engine sent first), the other buys by its key
      const states = await Promise.all([gateway, portal].map(async (out) => (await current(out.row.id)).state));
      assert.deepEqual(states.sort(), ['pending', 'waiting']);
      assert.equal(up.sold(), soldBefore + 1);
      h.clock.advance(2000);
      await tick();
      for (const out of [gateway, portal]) assert.equal((await current(out.row.id)).state, 'waiting');
      assert.equal(up.sold(), soldBefore + 2, 'each bought once, by its own key');
      const replay = await buy(user, 'unsold-5xx');
      assert.equal(replay.status, 202, 'the first answer was 202 and stays 202');
      for (const out of [gateway, portal]) assert.equal((await cancelVerification(h.deps, await current(out.row.id), 'customer')).kind, 'cancelled');
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      return;
    }
    const buys = await callsDuring(async () => {
      for (const row of await recoverUnsold(gateway.row.id, portal.row.id)) {
        assert.equal(row.state, 'failed');
        assert.equal(row.upstreamStatus, subject.unsoldRecovery === 'absent' ? 'absent' : 'orphan_suspected');
        assert.equal(await notices(row.id, 'refund_issued'), 1, 'a refund issued in the background is notified');
      }
    });
    assert.deepEqual(
      buys.filter((c) => c === 'buy'),
      [],
      'recovery reads, it never buys',
    );
    assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
    assert.equal(up.sold(), soldBefore);
  });

  // Not where nothing can prove a purchase absent there.
  scenario('recovery proves the purchase absent when the seller has no numbers now: failed, refunded once, nothing bought', has('failNext', 'setStock') && subject.unsoldRecovery !== 'undecided', async () => {
    const user = await h.customer(1000);
    const soldBefore = up.sold();
    up.failNext!('buy', { type: 'drop' }); // cut before anything happened
    const out = await buy(user, 'absent', alt);
    assert.equal(out.status, 202);
    up.setStock!(alt, 0);
    const [row] = subject.unsoldRecovery === 'bought' ? [(await tick(), await current(out.row.id))] : await recoverUnsold(out.row.id);
    assert.ok(row);
    assert.equal(row.state, 'failed');
    assert.equal(row.upstreamStatus, 'absent');
    assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
    assert.equal(await notices(row.id, 'refund_issued'), 1);
    assert.equal(up.sold(), soldBefore);
  });

  // Not where a lookup cannot be made undecidable (the upstream proves absence, and cannot be obscured).
  scenario('recovery that can never decide: failed at the deadline, refunded, kept as a suspected orphan', has('failNext') && (subject.unsoldRecovery === 'undecided' || has('obscureLookups')), async () => {
    const user = await h.customer(1000);
    const P = price(main);
    up.failNext!('buy', { type: 'status', status: 500, body: 'oops', contentType: 'text/plain' });
    const out = await buy(user, 'undecidable');
    assert.equal(out.status, 202);
    up.obscureLookups?.(out.row.id, main, out.row.createdAt);
    await tick();
    h.clock.advance(SETTLE_MS);
    await tick();
    assert.equal((await current(out.row.id)).state, 'pending');
    assert.deepEqual(await h.wallet(user), [1000, P, 1000 - P]);
    h.clock.set(out.row.expiresAt);
    await tick();
    const row = await current(out.row.id);
    assert.equal(row.state, 'failed');
    assert.equal(row.upstreamStatus, 'orphan_suspected');
    assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
  });

  scenario('a seller account in another currency: every purchase refused, not charged, nothing bought, once the seller says so', has('revealForeignCurrency'), async () => {
    const user = await h.customer(1000);
    const soldBefore = up.sold();
    const restore = await up.revealForeignCurrency!();
    try {
      const error = await buyFails(user, 'foreign-currency');
      assert.equal(error.code, 'provider_unavailable');
      assert.equal(error.status, 503);
      const row = await current(error.extra.verification_id as string);
      assert.equal(row.state, 'failed');
      assert.match(row.failureReason ?? '', /^currency_mismatch: /);
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      assert.equal(up.sold(), soldBefore);
    } finally {
      await restore();
    }
    const home = await buy(user, 'home-currency');
    assert.equal(home.status, 201, 'back in our currency, purchases go through again');
    assert.equal((await cancelVerification(h.deps, home.row, 'customer')).kind, 'cancelled');
  });

  // ---- orphans, polling in batches ------------------------------------------------------------------

  scenario('an upstream order no verification knows is listed by activeOrders() and cancelled by reconcile', has('sellElsewhere'), async () => {
    up.setLifetime?.(3600);
    const orphan = up.sellElsewhere!(alt, new Date(h.clock.now().getTime() - 15 * 60_000));
    const listed = await h.deps.provider.activeOrders!();
    const entry = listed.find((o) => o.providerOrderId === orphan);
    assert.deepEqual(entry && { service: entry.service, phone: entry.phoneNumber }, { service: alt, phone: up.orderPhone(orphan) });

    const dry = await reconcile(h.deps, { days: 1, execute: false });
    const found = dry.found.filter((f) => f.kind === 'upstream_orphan');
    assert.equal(found.length, 1, JSON.stringify(dry.found));
    assert.match(found[0]!.detail, new RegExp(`order ${orphan}\\b`));
    assert.equal(up.orderState(orphan), 'waiting', 'a dry run changes nothing');

    const run = await reconcile(h.deps, { days: 1, execute: true });
    assert.equal(run.found.filter((f) => f.kind === 'upstream_orphan' && f.repaired).length, 1);
    assert.equal(up.orderState(orphan), 'cancelled', 'cancelled upstream');
    const again = await reconcile(h.deps, { days: 1, execute: false });
    assert.equal(again.found.filter((f) => f.kind === 'upstream_orphan').length, 0);
  });

  // Registered only where it applies (the SMS-Activate protocol's setStatus 6): nothing to skip.
  if (subject.providerName === 'sms-activate') test('a delivered order is finished upstream once, and its answer is in the history', async () => {
    assert.ok(up.provider.complete, 'the adapter can finish an order');
    const user = await h.customer(1000);
    const row = (await buy(user, 'finish-once')).row;
    up.deliver(row.providerOrderId!, row.createdAt, { code: '515151', text: 'code 515151' });
    const calls = await callsDuring(poll);
    assert.equal(calls.filter((c) => c === 'finish').length, 1, `the seller was told the order is finished: ${calls.join(',')}`);
    const done = await current(row.id);
    assert.deepEqual([done.state, done.upstreamStatus], ['received', 'completed']);
    assert.equal(await charges(row.id), 1);
    const history = await rows<{ reason: string }>(h.t.database.db, sql`SELECT reason FROM verification_events WHERE verification_id = ${row.id} AND from_state = to_state`);
    assert.deepEqual(history.map((e) => e.reason), ['upstream order finished']);
    assert.deepEqual((await callsDuring(poll)).filter((c) => c === 'finish'), [], 'never twice');
  });

  // Not where it polls one order at a time.
  scenario('batched polling: one list call captures the SMS of several waiting verifications', subject.batchesPolls, async () => {
    const alice = await h.customer(1000);
    const bob = await h.customer(1000);
    const bought = [
      (await buy(alice, 'batch-a1')).row,
      (await buy(alice, 'batch-a2', alt)).row,
      (await buy(bob, 'batch-b1')).row,
      (await buy(bob, 'batch-b2')).row,
    ];
    const [M, A] = [price(main), price(alt)];
    assert.deepEqual(await h.wallet(alice), [1000, M + A, 1000 - M - A]);
    assert.deepEqual(await h.wallet(bob), [1000, 2 * M, 1000 - 2 * M]);

    assert.deepEqual(await callsDuring(poll), ['list'], 'a tick with nothing delivered: one list call for all four');
    const codes = ['100001', '100002', '100003'];
    bought.slice(0, 3).forEach((row, i) => up.deliver(row.providerOrderId!, row.createdAt, { code: codes[i]!, text: `code ${codes[i]}` }));
    // An upstream that can be told a delivered order is finished is told so, once per order, in the same tick.
    const finishes = up.provider.complete ? codes.map(() => 'finish') : [];
    assert.deepEqual(await callsDuring(poll), ['list', ...finishes], 'one upstream call for four waiting verifications');
    for (const [i, row] of bought.slice(0, 3).entries()) {
      const done = await current(row.id);
      assert.equal(done.state, 'received');
      assert.equal(done.code, codes[i]);
      assert.equal(await charges(row.id), 1);
    }
    assert.equal((await current(bought[3]!.id)).state, 'waiting');
    assert.deepEqual(await h.wallet(alice), [1000 - M - A, 0, 1000 - M - A]);
    assert.deepEqual(await h.wallet(bob), [1000 - M, M, 1000 - 2 * M]);
    assert.equal((await cancelVerification(h.deps, bought[3]!, 'customer')).kind, 'cancelled');
    assert.deepEqual(await h.wallet(bob), [1000 - M, 0, 1000 - M]);
  });

  scenario('batched polling: an order missing from the list is checked on its own in the same tick', has('hideFromList'), async () => {
    const user = await h.customer(1000);
    const M = price(main);
    const first = (await buy(user, 'batch-missing-1')).row;
    const second = (await buy(user, 'batch-missing-2')).row;
    up.deliver(first.providerOrderId!, first.createdAt, { code: '424242', text: 'code 424242' });
    up.hideFromList!(first.providerOrderId!); // the seller closed it after the SMS
    const calls = await callsDuring(poll);
    assert.equal(calls[0], 'list');
    const looks = calls.slice(1).filter((c) => c !== 'finish');
    assert.ok(looks.length >= 1 && looks.every((c) => c === 'status'), calls.join(','));
    assert.equal(calls.filter((c) => c === 'finish').length, up.provider.complete ? 1 : 0, 'the delivered order is finished upstream');
    const done = await current(first.id);
    assert.equal(done.state, 'received');
    assert.equal(done.code, '424242');
    assert.equal((await current(second.id)).state, 'waiting');
    assert.deepEqual(await h.wallet(user), [1000 - M, M, 1000 - 2 * M]);
    assert.equal((await cancelVerification(h.deps, second, 'customer')).kind, 'cancelled');
    assert.deepEqual(await h.wallet(user), [1000 - M, 0, 1000 - M]);
  });

  // ---- what the upstream forgot, and what the breaker must not count ---------------------------------

  scenario('an order the upstream forgot is gone: the customer’s cancel refunds and an owed cancel settles', has('forget', 'failNext'), async () => {
    const user = await h.customer(1000);
    const { row } = await buy(user, 'forgotten-cancel');
    up.forget!(row.providerOrderId!);
    const cancelled = await cancelVerification(h.deps, row, 'customer');
    assert.equal(cancelled.kind, 'cancelled');
    assert.equal(cancelled.row.upstreamStatus, 'cancelled', 'nothing left to cancel upstream');
    assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);

    // An upstream cancel that failed is owed; once the upstream has forgotten the order, it settles.
    const owed = (await buy(user, 'forgotten-owed')).row;
    up.failNext!('cancel', { type: 'status', status: 503, body: 'busy', contentType: 'text/plain' });
    up.failNext!('status', { type: 'status', status: 503, body: 'busy', contentType: 'text/plain' });
    const refunded = await cancelVerification(h.deps, owed, 'customer');
    assert.equal(refunded.kind, 'cancelled');
    assert.equal(refunded.row.upstreamStatus, 'cancel_owed');
    assert.deepEqual(await h.wallet(user), [1000, 0, 1000], 'the customer is refunded at once');
    up.reset(); // whichever scripted 503 the cancel did not meet
    up.forget!(owed.providerOrderId!);
    const report = await tick();
    assert.equal(report.settled, 1);
    assert.equal((await current(owed.id)).upstreamStatus, 'cancelled');
  });

  scenario('the breaker counts upstream trouble, not an order the upstream forgot', has('forget', 'failNext'), async () => {
    const breaker = createBreaker(subject.label, { failureThreshold: 2, halfOpenAfterMs: 3_600_000 });
    const guarded = withBreaker(up.provider, breaker);
    const user = await h.customer(1000);
    const { row } = await buy(user, 'forgotten-breaker');
    up.forget!(row.providerOrderId!);
    const ref = { providerOrderId: row.providerOrderId!, phoneNumber: row.phoneNumber!, since: row.createdAt };
    for (let i = 0; i < 3; i += 1) {
      assert.equal((await guarded.check(ref)).messages.length, 0);
      assert.deepEqual(await guarded.cancel(row.providerOrderId!), { outcome: 'gone' });
    }
    assert.equal(breaker.state(), 'closed', 'six answers about a forgotten order opened nothing');
    // The same breaker does open on upstream trouble: two 5xx in a row.
    up.failNext!('status', { type: 'status', status: 503, body: 'busy', contentType: 'text/plain' }, 2);
    for (let i = 0; i < 2; i += 1) await assert.rejects(guarded.check(ref), ProviderError);
    assert.equal(breaker.state(), 'open');
  });

  scenario('a refusal in a word the adapter does not know is not upstream trouble: the breaker stays closed, nothing is bought', has('failNext', 'unknownRefusal'), async () => {
    const breaker = createBreaker(subject.label, { failureThreshold: 2, halfOpenAfterMs: 3_600_000 });
    const guarded = withBreaker(up.provider, breaker);
    const soldBefore = up.sold();
    for (let i = 0; i < 3; i += 1) {
      up.failNext!('buy', up.unknownRefusal!);
      const error = await guarded.buy({ service: main, country: 'US', maxCostMinor: 200, clientRef: `unknown-word-${i}` }).then(
        () => assert.fail('expected a refusal'),
        (e: unknown) => e,
      );
      assert.ok(error instanceof ProviderError);
      assert.ok(['rejected', 'unrecognised_answer'].includes(error.code), error.code);
    }
    assert.equal(breaker.state(), 'closed', 'three refusals in a word we do not know opened nothing');
    assert.equal(up.sold(), soldBefore);
    up.failNext!('buy', { type: 'status', status: 502, body: 'Bad Gateway', contentType: 'text/plain' }, 2);
    for (let i = 0; i < 2; i += 1) {
      await assert.rejects(guarded.buy({ service: main, country: 'US', maxCostMinor: 200, clientRef: `gateway-${i}` }), ProviderError);
    }
    assert.equal(breaker.state(), 'open', 'two 502s in a row do');
  });

  // ---- webhooks ---------------------------------------------------------------------------------

  scenario('an SMS reported by both the poller and a webhook is one message with one identity, whichever comes first', has('webhookForLastSms'), async () => {
    const receiver = up.provider.webhooks;
    assert.ok(receiver, 'an upstream that sends webhooks offers the capability');
    const user = await h.customer(1000);
    const P = price(main);

    // Poller first.
    const first = (await buy(user, 'webhook-after-poll')).row;
    up.deliver(first.providerOrderId!, first.createdAt, { code: '314159', text: 'Your code is 314159' });
    await poll();
    assert.equal((await current(first.id)).state, 'received');
    const late = up.webhookForLastSms!();
    assert.equal(receiver.verify(late), true);
    const event = receiver.parse(late.rawBody);
    assert.ok(event.dedupeKey, 'the upstream’s deduplication key is read besides the event id');
    assert.equal(event.sms?.providerOrderId, first.providerOrderId);
    assert.equal(event.sms?.message.providerMessageId, (await messages(first.id))[0]!.provider_message_id, 'the same identity on both paths');
    assert.equal((await recordMessages(h.deps, first.id, [event.sms!.message], 'webhook'))?.stored, 0);
    assert.equal((await messages(first.id)).length, 1);

    // Webhook first.
    const second = (await buy(user, 'webhook-before-poll')).row;
    up.deliver(second.providerOrderId!, second.createdAt, { code: '271828', text: 'Your code is 271828' });
    const early = receiver.parse(up.webhookForLastSms!().rawBody);
    assert.equal((await recordMessages(h.deps, second.id, [early.sms!.message], 'webhook'))?.captured, true);
    await poll();
    assert.equal((await messages(second.id)).length, 1, 'the poller finds it stored already');
    assert.deepEqual(await h.wallet(user), [1000 - 2 * P, 0, 1000 - 2 * P]);
    assert.equal(await charges(second.id), 1);
  });

  // ---- the catalogue ----------------------------------------------------------------------------------

  test('syncCatalogue fills the catalogue from the upstream’s price list with a markup, rounded up, through a rate limit in the middle', async () => {
    // An operator's edits: a display name, an offer switched off.
    await putProviderCatalogue(h.t.database.db, subject.providerName, [
      { service: main, name: 'The main service', priceMinor: price(main), costMinor: 1 },
      { service: alt, priceMinor: price(alt), costMinor: 1, enabled: false },
    ]);
    up.failNext?.('prices', { type: 'rateLimit', retryAfter: '1' }, 2);
    const result = await syncCatalogue(h.deps, { markupPercent: 30 });
    assert.equal(result.provider, subject.providerName);
    assert.deepEqual(result.skipped, []);
    const stored = await rows<{ service: string; country: string; name: string; cost_minor: number; price_minor: number; enabled: boolean }>(
      h.t.database.db,
      sql`SELECT service, country, name, cost_minor::int, price_minor::int, enabled FROM services WHERE provider = ${subject.providerName}`,
    );
    const byKey = new Map(stored.map((r) => [`${r.service}/${r.country}`, r]));
    for (const entry of subject.catalogue) {
      const row = byKey.get(`${entry.service}/${entry.country}`);
      assert.ok(row, `${entry.service}/${entry.country} stored`);
      assert.deepEqual([row.cost_minor, row.price_minor], [entry.costMinor, priceWithMarkup(entry.costMinor, 30)], `${entry.service}/${entry.country}`);
    }
    assert.equal(byKey.get(`${main}/US`)?.name, 'The main service', 'an operator’s name is kept');
    assert.equal(byKey.get(`${alt}/US`)?.enabled, false, 'a switched-off offer stays off');
    assert.ok(!(await listOffers(h.t.database.db, subject.providerName)).some((o) => o.service === alt && o.country === 'US'));

    const user = await h.customer(1000);
    const expected = priceWithMarkup(subject.catalogue.find((e) => e.service === main && e.country === 'US')!.costMinor, 30);
    const out = await buy(user, 'synced');
    assert.equal(out.row.priceMinor, expected);
    const mainCost = subject.catalogue.find((e) => e.service === main && e.country === 'US')!.costMinor;
    if (up.lastPurchaseCap) assert.equal(up.lastPurchaseCap(), mainCost / 100, 'the synced cost is the new cap');
    assert.deepEqual(await h.wallet(user), [1000, expected, 1000 - expected]);
    assert.equal((await cancelVerification(h.deps, out.row, 'customer')).kind, 'cancelled');
    assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
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
