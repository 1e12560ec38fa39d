import { sql } from 'drizzle-orm';
import type { Clock } from '../clock.ts';
import { rows, type Executor } from '../db/database.ts';

/**
 * How well each offer has delivered lately (docs/api.md, "Success rate"): over the verifications
 * that finished in the last 24 hours (resolved_at in (now − 24 h, now]), the share that received a
 * code (received ÷ finished, every terminal state counted as finished) and the median time from
 * purchase to code. Below STATS_MIN_SAMPLE finished verifications there is too little to go on:
 * both figures are null and the sample size says why, so a new offer never shows as 0 %.
 */
export const STATS_WINDOW_MS = 24 * 3600_000;
export const STATS_MIN_SAMPLE = 10;
/** How long one computation is reused in a process: the listing is read far more often than it changes. */
export const STATS_CACHE_MS = 30_000;

export interface DeliveryStats {
  /** Verifications that finished in the window. */
  sampleSize: number;
  received: number;
  /** received ÷ finished, rounded to 3 decimals; null below STATS_MIN_SAMPLE. */
  successRate: number | null;
  /** Median seconds from purchase to code among the received, rounded to a whole second; null below STATS_MIN_SAMPLE or with none received. */
  medianSecondsToCode: number | null;
}

export interface StatsRow extends DeliveryStats {
  provider?: string;
  service: string;
  country: string;
}

/** The figures shown for one group's counts (pure). */
export function deliveryStats(finished: number, received: number, medianSeconds: number | null): DeliveryStats {
  const enough = finished >= STATS_MIN_SAMPLE;
  return {
    sampleSize: finished,
    received,
    successRate: enough ? Math.round((received / finished) * 1000) / 1000 : null,
    medianSecondsToCode: enough && received > 0 && medianSeconds !== null ? Math.round(medianSeconds) : null,
  };
}

/**
 * One aggregate statement over the window. It reads a range of the partial index
 * verifications_finished (resolved_at, with the grouped columns included), so its cost follows the
 * rows of the last day, not the table.
 */
export async function deliveryStatsSince(ex: Executor, now: Date, options: { byProvider?: boolean } = {}): Promise<StatsRow[]> {
  const since = new Date(now.getTime() - STATS_WINDOW_MS);
  const byProvider = options.byProvider ?? false;
  const found = await rows<{ provider: string | null; service: string; country: string; finished: number; received: number; median: number | string | null }>(
    ex,
    sql`SELECT ${byProvider ? sql`provider` : sql`NULL::text`} AS provider, service, country,
               count(*)::int AS finished,
               count(*) FILTER (WHERE state = 'received')::int AS received,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM resolved_at - created_at))
                 FILTER (WHERE state = 'received') AS median
        FROM verifications
        WHERE resolved_at IS NOT NULL AND resolved_at > ${since} AND resolved_at <= ${now}
        GROUP BY ${byProvider ? sql`provider, ` : sql``}service, country`,
  );
  return found.map((r) => ({
    ...(byProvider ? { provider: r.provider ?? '' } : {}),
    service: r.service,
    country: r.country,
    ...deliveryStats(Number(r.finished), Number(r.received), r.median === null ? null : Number(r.median)),
  }));
}

/** deliveryStatsSince reused for STATS_CACHE_MS (by the injected clock); concurrent readers share one statement. */
export function cachedDeliveryStats(clock: Clock, options: { byProvider?: boolean; ttlMs?: number } = {}) {
  let cached: { at: number; value: Promise<StatsRow[]> } | undefined;
  return (ex: Executor): Promise<StatsRow[]> => {
    const now = clock.now();
    if (!cached || now.getTime() - cached.at >= (options.ttlMs ?? STATS_CACHE_MS) || now.getTime() < cached.at) {
      const value = deliveryStatsSince(ex, now, options);
      cached = { at: now.getTime(), value };
      // A failed statement is not kept: the next reader asks again.
      value.catch(() => {
        if (cached?.value === value) cached = undefined;
      });
    }
    return cached.value;
  };
}

/** The key a stats row is found under. */
export function statsKey(service: string, country: string, provider?: string): string {
  return `${provider ?? ''}\u0000${service}\u0000${country}`;
}
