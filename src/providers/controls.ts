import { eq, sql } from 'drizzle-orm';
import { bigint, pgTable, text, uuid } from 'drizzle-orm/pg-core';
import { timestamptz } from '../db/columns.ts';
import { rows, type Database, type Executor } from '../db/database.ts';

/**
 * The operator's controls per upstream (docs/operations.md, "Upstreams"): `enabled` sells,
 * `disabled` is the kill switch (no new purchases in any process within a second), `draining` is a
 * planned wind-down (no new purchases either, shown as such). In every mode the orders an upstream
 * already sold settle normally: these controls only ever stop purchases. Only this module writes
 * `provider_controls`; a provider without a row is enabled.
 */
export const providerModes = ['enabled', 'disabled', 'draining'] as const;
export type ProviderMode = (typeof providerModes)[number];

export const providerControls = pgTable('provider_controls', {
  provider: text('provider').primaryKey(),
  mode: text('mode', { enum: providerModes }).notNull().default('enabled'),
  balanceLowMinor: bigint('balance_low_minor', { mode: 'number' }),
  balanceLowSince: timestamptz('balance_low_since'),
  balanceMinor: bigint('balance_minor', { mode: 'number' }),
  balanceCurrency: text('balance_currency'),
  balanceReadAt: timestamptz('balance_read_at'),
  changedBy: uuid('changed_by'),
  changedAt: timestamptz('changed_at'),
});

export type ProviderControlRow = typeof providerControls.$inferSelect;

/** What purchases ask: may this upstream sell now? */
export interface ProviderControls {
  /** True while the operator has the provider disabled or draining. */
  isDisabled(provider: string): boolean;
  /** Re-reads the modes now (after a change made in this process). */
  refresh?(): Promise<void>;
}

/** Every change is announced here (inside its transaction), so every process re-reads at once. */
export const CONTROLS_CHANNEL = 'namaskah_provider_controls';

/** How often a process re-reads the controls even without an announcement (a dropped LISTEN connection). */
export const CONTROLS_REFRESH_MS = 1000;

export function stopsPurchases(mode: ProviderMode): boolean {
  return mode !== 'enabled';
}

export async function readProviderControls(ex: Executor): Promise<ProviderControlRow[]> {
  return ex.select().from(providerControls).orderBy(providerControls.provider);
}

/**
 * Sets a provider's mode; returns the mode it had before. Called with the transaction that also
 * records the change in the audit log.
 */
export async function setProviderMode(
  ex: Executor,
  change: { provider: string; mode: ProviderMode; changedBy: string | null; now: Date },
): Promise<{ previous: ProviderMode }> {
  const [before] = await ex
    .select({ mode: providerControls.mode })
    .from(providerControls)
    .where(eq(providerControls.provider, change.provider))
    .for('update');
  await ex
    .insert(providerControls)
    .values({ provider: change.provider, mode: change.mode, changedBy: change.changedBy, changedAt: change.now })
    .onConflictDoUpdate({
      target: providerControls.provider,
      set: { mode: change.mode, changedBy: change.changedBy, changedAt: change.now },
    });
  await ex.execute(sql`SELECT pg_notify(${CONTROLS_CHANNEL}, ${change.provider})`);
  return { previous: before?.mode ?? 'enabled' };
}

/** Sets (or, with null, clears) a provider's own low-balance threshold; returns the one before. */
export async function setBalanceThreshold(
  ex: Executor,
  change: { provider: string; thresholdMinor: number | null; changedBy: string | null; now: Date },
): Promise<{ previous: number | null }> {
  const [before] = await ex
    .select({ threshold: providerControls.balanceLowMinor })
    .from(providerControls)
    .where(eq(providerControls.provider, change.provider))
    .for('update');
  await ex
    .insert(providerControls)
    .values({ provider: change.provider, balanceLowMinor: change.thresholdMinor, changedBy: change.changedBy, changedAt: change.now })
    .onConflictDoUpdate({
      target: providerControls.provider,
      set: { balanceLowMinor: change.thresholdMinor, changedBy: change.changedBy, changedAt: change.now },
    });
  return { previous: before?.threshold ?? null };
}

/** The threshold that applies to a provider: its own, else the configured one; 0 means no alert. */
export function balanceThreshold(row: Pick<ProviderControlRow, 'balanceLowMinor'> | undefined, configured: number): number {
  return row?.balanceLowMinor ?? configured;
}

/**
 * Whether a balance reading is a crossing: `fell_below` once when it goes under the threshold,
 * `recovered` once when it is back at or above it, `unchanged` otherwise. A balance the upstream
 * does not state, or a threshold of 0, never alerts.
 */
export function balanceCrossing(wasLow: boolean, amountMinor: number | null, thresholdMinor: number): 'fell_below' | 'recovered' | 'unchanged' {
  if (amountMinor === null) return 'unchanged';
  const low = thresholdMinor > 0 && amountMinor < thresholdMinor;
  if (low && !wasLow) return 'fell_below';
  if (!low && wasLow) return 'recovered';
  return 'unchanged';
}

/**
 * Records a balance read at an upstream. Returns `fell_below` to exactly one caller per crossing,
 * whichever process reads it (a compare-and-set on `balance_low_since`), so the alert that the
 * caller writes in the same transaction is raised once.
 */
export async function recordBalanceReading(
  ex: Executor,
  reading: { provider: string; amountMinor: number | null; currency: string; configuredThreshold: number; now: Date },
): Promise<{ crossing: 'fell_below' | 'recovered' | 'unchanged'; thresholdMinor: number }> {
  await ex.insert(providerControls).values({ provider: reading.provider }).onConflictDoNothing();
  const [row] = await ex.select().from(providerControls).where(eq(providerControls.provider, reading.provider)).for('update');
  const thresholdMinor = balanceThreshold(row, reading.configuredThreshold);
  const crossing = balanceCrossing(row?.balanceLowSince != null, reading.amountMinor, thresholdMinor);
  await ex
    .update(providerControls)
    .set({
      balanceMinor: reading.amountMinor,
      balanceCurrency: reading.currency,
      balanceReadAt: reading.now,
      ...(crossing === 'fell_below' ? { balanceLowSince: reading.now } : crossing === 'recovered' ? { balanceLowSince: null } : {}),
    })
    .where(eq(providerControls.provider, reading.provider));
  return { crossing, thresholdMinor };
}

/**
 * The in-process copy every purchase reads: refreshed at once when any process announces a change
 * (LISTEN on PostgreSQL; PGlite's own listen for the single embedded process) and re-read every
 * CONTROLS_REFRESH_MS besides, so a lost announcement costs at most that long.
 */
export class LiveProviderControls implements ProviderControls {
  private modes = new Map<string, ProviderMode>();
  private timer?: NodeJS.Timeout;
  private unlisten?: () => Promise<void>;
  private reading?: Promise<void>;
  private again = false;

  constructor(
    private readonly database: Database,
    private readonly options: { refreshMs?: number; onError?: (error: unknown) => void } = {},
  ) {}

  isDisabled(provider: string): boolean {
    return stopsPurchases(this.modes.get(provider) ?? 'enabled');
  }

  modeOf(provider: string): ProviderMode {
    return this.modes.get(provider) ?? 'enabled';
  }

  /** Reads the table now; concurrent calls share one read and ask for one more after it. */
  refresh(): Promise<void> {
    if (this.reading) {
      this.again = true;
      return this.reading;
    }
    this.reading = (async () => {
      try {
        do {
          this.again = false;
          const found = await rows<{ provider: string; mode: ProviderMode }>(this.database.db, sql`SELECT provider, mode FROM provider_controls`);
          this.modes = new Map(found.map((r) => [r.provider, r.mode]));
        } while (this.again);
      } finally {
        this.reading = undefined;
      }
    })();
    return this.reading;
  }

  async start(): Promise<void> {
    await this.refresh();
    const quietly = () => void this.refresh().catch((error: unknown) => this.options.onError?.(error));
    this.unlisten = await this.database.listen(CONTROLS_CHANNEL, quietly);
    this.timer = setInterval(quietly, this.options.refreshMs ?? CONTROLS_REFRESH_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.unlisten?.();
    this.unlisten = undefined;
    await this.reading?.catch(() => {});
  }
}
