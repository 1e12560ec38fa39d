import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { breakerFor, providerFor } from '../providers/set.ts';
import { claimDue, deadAfterMs, forgetWorker, heartbeat, postponeSettlement, releaseAllLeases, releaseLease, releaseLeases, releasePolled, type DueKind } from './queue.ts';
import { raiseLowBalanceNotices } from '../notifications/low-balance.ts';
import { byProvider, checkUpstream, expireDue, noticeCheck, recoverPurchase, upstreamMessages } from '../verifications/flows.ts';
import { orderRef, recordMessages, type LifecycleDeps, type VerificationRow } from '../verifications/lifecycle.ts';
import { settleUpstream } from '../verifications/settlement.ts';
import { backoffMs } from '../verifications/transitions.ts';
import { WebhookDelivery, type WebhookDeliveryOptions } from './webhook-delivery.ts';
import { checkUpstreamBalances, type BalanceCheckResult } from './upstream-balances.ts';
import { maintainTables, type Upkeep } from '../db/maintenance.ts';
import type { Provider } from '../providers/provider.ts';

/**
 * The background engine: polls waiting verifications, expires them at their deadline, recovers
 * pending purchases and retries owed upstream cancels. All of its work is in the database, so any
 * number of engines (processes, machines) can run side by side.
 */
export interface EngineOptions {
  workerId?: string;
  batchSize?: number;
  /** Rows expired per transaction at their deadline (default 500). */
  expireBatchSize?: number;
  /** How customers' webhooks are sent (the resolver and jitter tests inject). */
  webhooks?: WebhookDeliveryOptions;
  /** The upstreams whose balance is read every UPSTREAM_BALANCE_CHECK_SECONDS for the low-balance alert (without their breakers). */
  upstreams?: readonly Provider[];
}

export interface TickReport {
  polled: number;
  captured: number;
  expired: number;
  recovered: number;
  settled: number;
}

export class Engine {
  readonly workerId: string;
  private readonly batchSize: number;
  private readonly expireBatchSize: number;
  readonly webhooks: WebhookDelivery;
  private timer?: NodeJS.Timeout;
  private pulse?: NodeJS.Timeout;
  private beating?: Promise<unknown>;
  private running?: Promise<unknown>;
  private webhookTimer?: NodeJS.Timeout;
  private delivering?: Promise<unknown>;
  private balanceTimer?: NodeJS.Timeout;
  private checkingBalances?: Promise<unknown>;
  private upkeepTimer?: NodeJS.Timeout;
  private keepingUp?: Promise<unknown>;
  private readonly upstreams: readonly Provider[];
  private stopped = true;

  constructor(
    private readonly deps: LifecycleDeps,
    options: EngineOptions = {},
  ) {
    this.workerId = options.workerId ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
    this.batchSize = options.batchSize ?? 100;
    this.expireBatchSize = options.expireBatchSize ?? 500;
    this.webhooks = new WebhookDelivery(deps, this.workerId, options.webhooks);
    this.upstreams = options.upstreams ?? [];
  }

  /** Reads each upstream's balance and raises the low-balance alert on a crossing (engine/upstream-balances.ts). */
  checkBalances(): Promise<BalanceCheckResult[]> {
    return checkUpstreamBalances(this.deps, this.upstreams);
  }

  /**
   * The embedded database's vacuum and analyze (src/db/maintenance.ts): it has no autovacuum, and
   * the engine is the one background worker it has. PostgreSQL's own autovacuum does this there.
   */
  async keepUpEmbedded(): Promise<Upkeep[]> {
    const done = await maintainTables(this.deps.database);
    if (done.length > 0) this.deps.logger.info({ upkeep: done }, 'embedded database vacuumed and analyzed');
    return done;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const loop = async () => {
      if (this.stopped) return;
      this.running = this.tick().catch((error: unknown) => this.deps.logger.error({ err: error }, 'engine tick failed'));
      await this.running;
      if (!this.stopped) this.timer = setTimeout(loop, this.deps.config.ENGINE_TICK_MS);
    };
    this.timer = setTimeout(loop, 0);
    const webhookLoop = async () => {
      if (this.stopped) return;
      this.delivering = this.deliverWebhooks().catch((error: unknown) => this.deps.logger.error({ err: error }, 'webhook delivery failed'));
      await this.delivering;
      if (!this.stopped) this.webhookTimer = setTimeout(webhookLoop, this.deps.config.ENGINE_TICK_MS);
    };
    this.webhookTimer = setTimeout(webhookLoop, 0);
    if (this.upstreams.length > 0) {
      const balanceCheck = () => {
        this.checkingBalances ??= this.checkBalances()
          .catch((error: unknown) => this.deps.logger.warn({ err: error }, 'upstream balance check failed'))
          .finally(() => (this.checkingBalances = undefined));
      };
      balanceCheck();
      this.balanceTimer = setInterval(balanceCheck, this.deps.config.UPSTREAM_BALANCE_CHECK_SECONDS * 1000);
      this.balanceTimer.unref();
    }
    if (this.deps.database.engine === 'pglite' && this.deps.config.EMBEDDED_UPKEEP_SECONDS > 0) {
      this.upkeepTimer = setInterval(() => {
        this.keepingUp ??= this.keepUpEmbedded()
          .catch((error: unknown) => this.deps.logger.warn({ err: error }, 'embedded database upkeep failed'))
          .finally(() => (this.keepingUp = undefined));
      }, this.deps.config.EMBEDDED_UPKEEP_SECONDS * 1000);
      this.upkeepTimer.unref();
    }
    // The heartbeat runs beside the ticks: a tick waiting on slow upstreams must not look dead, and
    // a killed worker falls silent within a beat, so the others take its rows over in seconds.
    this.pulse = setInterval(() => {
      this.beating ??= heartbeat(this.deps.database.db, this.workerId, this.deps.clock.now())
        .catch((error: unknown) => this.deps.logger.warn({ err: error, worker: this.workerId }, 'engine heartbeat failed'))
        .finally(() => (this.beating = undefined));
    }, heartbeatEveryMs(this.deps.config.ENGINE_DEAD_AFTER_SECONDS));
    this.pulse.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.webhookTimer) clearTimeout(this.webhookTimer);
    if (this.pulse) clearInterval(this.pulse);
    if (this.balanceTimer) clearInterval(this.balanceTimer);
    if (this.upkeepTimer) clearInterval(this.upkeepTimer);
    await Promise.all([this.running, this.delivering, this.checkingBalances, this.keepingUp]);
    await this.beating;
    try {
      await releaseAllLeases(this.deps.database.db, this.workerId);
      await forgetWorker(this.deps.database.db, this.workerId);
    } catch (error) {
      // Stopping goes on (the database may be closing too); a worker left listed stops ticking and shows as not alive.
      this.deps.logger.warn({ err: error, worker: this.workerId }, 'could not remove this worker from engine_workers');
    }
  }

  /**
   * One pass over the customers' webhook deliveries that are due now; the number of attempts made
   * and recorded. It runs in a loop of its own, so a slow receiver never delays a poll, an expiry
   * or a refund. Tests call this directly with an injected clock.
   */
  async deliverWebhooks(): Promise<number> {
    let attempts = 0;
    const deliveries = await this.webhooks.claim(this.batchSize);
    await eachConcurrently(deliveries, this.deps.config.ENGINE_CONCURRENCY, async (delivery) => {
      if ((await this.webhooks.deliver(delivery)).recorded) attempts++;
    });
    return attempts;
  }

  /** One pass over everything that is due now. Tests call this directly with an injected clock. */
  async tick(): Promise<TickReport> {
    const { database, clock, config } = this.deps;
    const report: TickReport = { polled: 0, captured: 0, expired: 0, recovered: 0, settled: 0 };
    const now = clock.now();
    await heartbeat(database.db, this.workerId, now);
    const leaseMs = config.LEASE_SECONDS * 1000;
    const claim = { workerId: this.workerId, now, leaseMs, deadAfterMs: deadAfterMs(config), limit: this.batchSize };

    // Deadlines first, a batch per transaction: a refund never waits behind polls or owed upstream
    // work. Looked for again after the polls, so a deadline passing while they run waits for them
    // only, not for the owed upstream work too.
    await this.expireDueBatches(claim, report);

    const due = await this.setAsideUnconfigured(await claimDue(database.db, { ...claim, kind: 'poll' }), 'poll');
    const toPoll = due.filter((row) => row.state === 'waiting' && now < row.expiresAt);
    const toExpire = due.filter((row) => row.state === 'waiting' && now >= row.expiresAt);
    if (toExpire.length > 0) await this.expire(toExpire, report);
    // Rows are independent (each is leased to this worker and changed by compare-and-set), so a
    // batch is worked on several at a time: upstream round trips overlap instead of queueing.
    await eachConcurrently(
      due.filter((row) => row.state === 'pending' || row.state === 'expired'),
      config.ENGINE_CONCURRENCY,
      async (row) => {
        if (row.state === 'pending') await this.recover(row, report);
        else await this.watchLate(row);
      },
    );
    if (toPoll.length > 0) await this.poll(toPoll, report);
    await this.expireDueBatches({ ...claim, now: clock.now() }, report);

    const owed = await this.setAsideUnconfigured(await claimDue(database.db, { ...claim, kind: 'settle' }), 'settle');
    await eachConcurrently(owed, config.ENGINE_CONCURRENCY, async (row) => {
      const status = await settleUpstream(this.deps, row, 'sweeper');
      if (status !== row.upstreamStatus) report.settled++;
      await releaseLease(database.db, row.id, this.workerId, {});
    });
    // Customers' low-balance notices: one set-based pass, each crossing raised once.
    await raiseLowBalanceNotices(database, config.CURRENCY, clock.now());
    return report;
  }

  private async recover(row: VerificationRow, report: TickReport): Promise<void> {
    const { database, clock } = this.deps;
    try {
      const after = await recoverPurchase(this.deps, row);
      if (after && after.state !== 'pending') report.recovered++;
      const failures = after?.state === 'pending' ? row.checkFailures + 1 : 0;
      const next = new Date(Math.min(clock.now().getTime() + backoffMs(failures), Math.max(row.expiresAt.getTime(), clock.now().getTime() + 1000)));
      await releaseLease(database.db, row.id, this.workerId, {
        nextCheckAt: after?.state === 'waiting' ? this.nextPoll(after) : next,
        checkFailures: failures,
      });
    } catch (error) {
      this.deps.logger.error({ verification: row.id, err: error }, 'recovery failed');
      await this.retryLater(row);
    }
  }

  /** Claims and expires rows past their deadline, a batch per transaction; bounded so the rest of a tick gets its turn. */
  private async expireDueBatches(claim: Omit<Parameters<typeof claimDue>[1], 'kind'>, report: TickReport): Promise<void> {
    for (let batch = 0; batch < MAX_EXPIRY_BATCHES_PER_TICK; batch++) {
      const claimed = await claimDue(this.deps.database.db, { ...claim, kind: 'expire', limit: this.expireBatchSize });
      const due = await this.setAsideUnconfigured(claimed, 'expire');
      if (due.length > 0) await this.expire(due, report);
      if (claimed.length < this.expireBatchSize) break;
    }
  }

  /** Expires claimed rows past their deadline in one batch; rows another actor settled first are given back. */
  private async expire(rows: VerificationRow[], report: TickReport): Promise<void> {
    try {
      const { expired, captured } = await expireDue(this.deps, rows);
      report.expired += expired.length;
      report.captured += captured;
      const done = new Set(expired.map((row) => row.id));
      await releaseLeases(this.deps.database.db, rows.filter((row) => !done.has(row.id)).map((row) => row.id), this.workerId);
    } catch (error) {
      this.deps.logger.error({ verifications: rows.length, err: error }, 'deadline batch failed');
      for (const row of rows) await this.retryLater(row);
    }
  }

  /** After the deadline, keeps looking for a late SMS for a while: stored and shown, never charged. */
  private async watchLate(row: VerificationRow): Promise<void> {
    const { clock, config, database } = this.deps;
    const breaker = breakerFor(this.deps, row.provider);
    const windowEnds = (row.resolvedAt ?? row.expiresAt).getTime() + config.LATE_SMS_WINDOW_SECONDS * 1000;
    let next: Date | null = null;
    if (clock.now().getTime() < windowEnds) {
      // An open breaker or a failed check only postpones the look: a late SMS is never dropped
      // because the upstream had a bad moment. The watch ends with the window or once one is stored.
      const messages = breaker.isOpen() ? undefined : await upstreamMessages(this.deps, row, 'looking for a late SMS failed');
      const result = messages && messages.length > 0 ? await recordMessages(this.deps, row.id, messages, 'poller') : undefined;
      if (!result || result.stored === 0) next = new Date(Math.min(windowEnds, clock.now().getTime() + config.POLL_INTERVAL_MS));
    }
    await releaseLease(database.db, row.id, this.workerId, { nextCheckAt: next });
  }

  /**
   * Rows whose provider is configured nowhere (not in PROVIDERS, no credentials left to drain it):
   * nothing can ask that upstream, so they are left exactly as they are — no refund, no state change —
   * logged as an error and looked at again later; diagnose reports them until an operator acts.
   */
  private async setAsideUnconfigured(rows: VerificationRow[], kind: DueKind): Promise<VerificationRow[]> {
    const { providers, database, clock, logger } = this.deps;
    if (!providers || rows.length === 0) return rows;
    const kept: VerificationRow[] = [];
    const aside: VerificationRow[] = [];
    for (const row of rows) (providers.member(row.provider) ? kept : aside).push(row);
    if (aside.length === 0) return kept;
    logger.error(
      { providers: [...new Set(aside.map((row) => row.provider))], verifications: aside.length, work: kind },
      'orders of a provider that is configured nowhere are left as they are (configure it again; see diagnose)',
    );
    const later = new Date(clock.now().getTime() + UNCONFIGURED_RETRY_MS);
    for (const row of aside) {
      if (kind === 'settle') await postponeSettlement(database.db, row.id, this.workerId, later);
      else await releaseLease(database.db, row.id, this.workerId, { nextCheckAt: later });
    }
    return kept;
  }

  /** Polls waiting rows, a group per provider. */
  private async poll(list: VerificationRow[], report: TickReport): Promise<void> {
    report.polled += list.length;
    for (const [name, group] of byProvider(list)) await this.pollProvider(name, group, report);
  }

  /** Polls one provider's waiting rows, in one upstream call when it has a list call. */
  private async pollProvider(name: string, list: VerificationRow[], report: TickReport): Promise<void> {
    const { database } = this.deps;
    const provider = providerFor(this.deps, name);
    const breaker = breakerFor(this.deps, name);
    if (breaker.isOpen()) {
      // An open provider is skipped without counting against any row; deadlines still refund.
      for (const row of list) await releaseLease(database.db, row.id, this.workerId, { nextCheckAt: this.nextPoll(row) });
      return;
    }
    // Rows checked without trouble go back in one statement at the end (a waiting row's poll
    // usually changes nothing else); a row whose check failed is retried later on its own.
    const polled: { id: string; nextCheckAt: Date }[] = [];
    if (provider.checkMany && list.length > 1) {
      try {
        const checks = await provider.checkMany(list.map(orderRef));
        // An order missing from the list call (the upstream no longer lists it as active, or lists
        // only one page) may still hold its SMS: those are checked one by one below.
        const missing: VerificationRow[] = [];
        for (const row of list) {
          const check = checks.get(row.providerOrderId!);
          if (!check) {
            missing.push(row);
            continue;
          }
          await noticeCheck(this.deps, row, check);
          if (check.messages.length > 0) {
            const result = await recordMessages(this.deps, row.id, check.messages, 'poller');
            if (result?.captured) report.captured++;
          }
          polled.push({ id: row.id, nextCheckAt: this.nextPoll(row) });
        }
        list = missing;
      } catch (error) {
        this.deps.logger.warn({ err: error, provider: name }, 'batched poll failed; polling one by one');
      }
    }
    await eachConcurrently(list, this.deps.config.ENGINE_CONCURRENCY, async (row) => {
      try {
        const result = await checkUpstream(this.deps, row, 'poller');
        if (result?.captured) report.captured++;
        polled.push({ id: row.id, nextCheckAt: this.nextPoll(row) });
      } catch (error) {
        this.deps.logger.warn({ verification: row.id, err: error }, 'poll failed');
        await this.retryLater(row);
      }
    });
    await releasePolled(database.db, polled, this.workerId);
  }

  /** The next poll, never later than the deadline so expiry is never late. */
  private nextPoll(row: VerificationRow): Date {
    const at = this.deps.clock.now().getTime() + this.deps.config.POLL_INTERVAL_MS;
    return new Date(Math.min(at, row.expiresAt.getTime()));
  }

  private async retryLater(row: VerificationRow): Promise<void> {
    const failures = row.checkFailures + 1;
    const at = this.deps.clock.now().getTime() + backoffMs(failures);
    const next = row.state === 'waiting' ? Math.min(at, row.expiresAt.getTime()) : at;
    try {
      await releaseLease(this.deps.database.db, row.id, this.workerId, { nextCheckAt: new Date(next), checkFailures: failures });
    } catch (error) {
      // The lease then lapses on its own and another tick takes the row again.
      this.deps.logger.error({ verification: row.id, err: error }, 'could not give a row back after a failure');
    }
  }
}

/** How long orders of a provider configured nowhere are left before they are looked at again. */
const UNCONFIGURED_RETRY_MS = 60_000;

/** At most this many deadline batches per tick (5,000 rows at the default batch size). */
const MAX_EXPIRY_BATCHES_PER_TICK = 10;

/** A beat every second, or five per ENGINE_DEAD_AFTER_SECONDS when that is shorter (never under 200 ms). */
export function heartbeatEveryMs(deadAfterSeconds: number): number {
  return Math.max(200, Math.min(1000, (deadAfterSeconds * 1000) / 5));
}

/** Runs `work` over the items with at most `limit` in flight at once. */
async function eachConcurrently<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(Math.max(1, limit), items.length) }, async () => {
    while (next < items.length) await work(items[next++]!);
  });
  await Promise.all(lanes);
}
