import { sql } from 'drizzle-orm';
import { recordAudit } from '../accounts/audit.ts';
import { services } from '../catalogue/schema.ts';
import { deliveryStatsSince, statsKey, type DeliveryStats } from '../catalogue/stats.ts';
import type { Clock } from '../clock.ts';
import type { Config } from '../config.ts';
import { rows, type Database, type Executor } from '../db/database.ts';
import { DomainError } from '../errors.ts';
import type { BreakerState, ProviderBreaker } from '../providers/breaker.ts';
import {
  balanceThreshold,
  readProviderControls,
  setBalanceThreshold,
  setProviderMode,
  type ProviderControlRow,
  type ProviderMode,
} from '../providers/controls.ts';
import type { Provider } from '../providers/provider.ts';

/**
 * What the operator sees and changes per upstream (docs/operations.md, "Upstreams"): its mode, its
 * breaker, our balance there, how its offers delivered over the last day, the cancels it owes us
 * and the margin of each offer. The configured upstreams are passed in; providers that only appear
 * in the data (catalogue rows, owed cancels, controls) are listed too, as not configured.
 */
export interface UpstreamHandle {
  /** The upstream without its breaker: a balance read must not count against it. */
  provider: Pick<Provider, 'name' | 'balance'>;
  breaker?: ProviderBreaker;
}

export interface UpstreamsDeps {
  database: Database;
  clock: Clock;
  config: Pick<Config, 'UPSTREAM_BALANCE_LOW_MINOR'>;
}

export interface UpstreamOffer {
  service: string;
  country: string;
  enabled: boolean | null;
  priceMinor: number | null;
  costMinor: number | null;
  marginMinor: number | null;
  last24h: DeliveryStats;
}

export interface UpstreamReport {
  provider: string;
  configured: boolean;
  mode: ProviderMode;
  changedBy: string | null;
  changedAt: Date | null;
  breaker: BreakerState | null;
  balance: { amountMinor: number | null; currency: string; readAt: Date; live: boolean } | null;
  balanceLowMinor: number;
  balanceLow: boolean;
  cancelsOwed: { count: number; valueMinor: number };
  offers: UpstreamOffer[];
}

/** How long the page waits for an upstream's balance before showing the last one read. */
export const LIVE_BALANCE_TIMEOUT_MS = 3000;

async function liveBalance(provider: UpstreamHandle['provider'], timeoutMs: number) {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      provider.balance(),
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), timeoutMs);
      }),
    ]);
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

/** Every provider name the operator may act on: the configured ones and those the data knows. */
export async function knownProviders(ex: Executor, upstreams: readonly UpstreamHandle[]): Promise<string[]> {
  const found = await rows<{ provider: string }>(
    ex,
    sql`SELECT provider FROM services
        UNION SELECT provider FROM provider_controls
        UNION SELECT provider FROM verifications WHERE upstream_status = 'cancel_owed'`,
  );
  return [...new Set([...upstreams.map((u) => u.provider.name), ...found.map((r) => r.provider)])].sort();
}

export async function upstreamsReport(
  deps: UpstreamsDeps,
  upstreams: readonly UpstreamHandle[],
  options: { only?: string; balanceTimeoutMs?: number } = {},
): Promise<UpstreamReport[]> {
  const db = deps.database.db;
  const now = deps.clock.now();
  const names = (await knownProviders(db, upstreams)).filter((name) => !options.only || name === options.only);
  const controls = new Map<string, ProviderControlRow>((await readProviderControls(db)).map((row) => [row.provider, row]));
  const owed = new Map(
    (
      await rows<{ provider: string; n: number; value: number | string | null }>(
        db,
        sql`SELECT provider, count(*)::int AS n, sum(max_cost_minor) AS value FROM verifications
            WHERE upstream_status = 'cancel_owed' GROUP BY provider`,
      )
    ).map((r) => [r.provider, { count: Number(r.n), valueMinor: Number(r.value ?? 0) }]),
  );
  const catalogue = await db.select().from(services).orderBy(services.provider, services.service, services.country);
  const stats = new Map((await deliveryStatsSince(db, now, { byProvider: true })).map((s) => [statsKey(s.service, s.country, s.provider), s]));

  return Promise.all(
    names.map(async (name): Promise<UpstreamReport> => {
      const handle = upstreams.find((u) => u.provider.name === name);
      const control = controls.get(name);
      const threshold = balanceThreshold(control, deps.config.UPSTREAM_BALANCE_LOW_MINOR);
      const live = handle ? await liveBalance(handle.provider, options.balanceTimeoutMs ?? LIVE_BALANCE_TIMEOUT_MS) : undefined;
      const balance = live
        ? { amountMinor: live.amountMinor, currency: live.currency, readAt: now, live: true }
        : control?.balanceReadAt
          ? { amountMinor: control.balanceMinor, currency: control.balanceCurrency ?? '', readAt: control.balanceReadAt, live: false }
          : null;
      const offers: UpstreamOffer[] = catalogue
        .filter((o) => o.provider === name)
        .map((o) => ({
          service: o.service,
          country: o.country,
          enabled: o.enabled,
          priceMinor: o.priceMinor,
          costMinor: o.costMinor,
          marginMinor: o.priceMinor - o.costMinor,
          last24h: stats.get(statsKey(o.service, o.country, name)) ?? { sampleSize: 0, received: 0, successRate: null, medianSecondsToCode: null },
        }));
      // Offers no longer in the catalogue that still delivered lately.
      for (const s of stats.values()) {
        if (s.provider !== name || offers.some((o) => o.service === s.service && o.country === s.country)) continue;
        offers.push({ service: s.service, country: s.country, enabled: null, priceMinor: null, costMinor: null, marginMinor: null, last24h: s });
      }
      return {
        provider: name,
        configured: handle !== undefined,
        mode: control?.mode ?? 'enabled',
        changedBy: control?.changedBy ?? null,
        changedAt: control?.changedAt ?? null,
        breaker: handle?.breaker?.state() ?? null,
        balance,
        balanceLowMinor: threshold,
        balanceLow: threshold > 0 && balance?.amountMinor != null ? balance.amountMinor < threshold : control?.balanceLowSince != null,
        cancelsOwed: owed.get(name) ?? { count: 0, valueMinor: 0 },
        offers,
      };
    }),
  );
}

export interface UpstreamChange {
  provider: string;
  mode?: ProviderMode;
  /** A threshold of its own for this provider; null returns it to UPSTREAM_BALANCE_LOW_MINOR. */
  balanceLowMinor?: number | null;
}

/**
 * Applies an operator's change to one provider, with its audit rows, in one transaction. An unknown
 * provider is refused (validation_failed) and changes nothing.
 */
export async function changeUpstream(
  deps: UpstreamsDeps,
  upstreams: readonly UpstreamHandle[],
  change: UpstreamChange,
  audit: { actorId: string | null; actor: 'admin' | 'cli' },
): Promise<void> {
  const now = deps.clock.now();
  await deps.database.transaction(async (tx) => {
    const known = await knownProviders(tx, upstreams);
    if (!known.includes(change.provider)) {
      throw new DomainError('validation_failed', `no provider "${change.provider}"; known: ${known.join(', ') || 'none'}`, {
        issues: [{ in: 'path', path: '/provider', message: 'unknown provider' }],
      });
    }
    if (change.mode !== undefined) {
      const { previous } = await setProviderMode(tx, { provider: change.provider, mode: change.mode, changedBy: audit.actorId, now });
      await recordAudit(tx, { ...audit, action: 'provider.mode', subjectId: null, detail: { provider: change.provider, from: previous, to: change.mode }, now });
    }
    if (change.balanceLowMinor !== undefined) {
      const { previous } = await setBalanceThreshold(tx, { provider: change.provider, thresholdMinor: change.balanceLowMinor, changedBy: audit.actorId, now });
      await recordAudit(tx, {
        ...audit,
        action: 'provider.balance_threshold',
        subjectId: null,
        detail: { provider: change.provider, from: previous, to: change.balanceLowMinor },
        now,
      });
    }
  });
}
