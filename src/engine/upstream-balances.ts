import { and, eq, isNull } from 'drizzle-orm';
import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import type { Config } from '../config.ts';
import type { Database } from '../db/database.ts';
import { users } from '../accounts/schema.ts';
import { formatMinor } from '../money.ts';
import { notifyMany } from '../notifications/notifications.ts';
import { balanceThreshold, readProviderControls, recordBalanceReading } from '../providers/controls.ts';
import type { Provider } from '../providers/provider.ts';

/**
 * The low-balance alert (docs/operations.md, "Upstreams"): reads our balance at each upstream and,
 * when it has fallen below its threshold, tells every admin once per crossing (an
 * `upstream_balance_low` notification, written in the transaction that records the crossing, so
 * several engines reading at once raise it once). Takes the providers to read as a parameter; pass
 * them without their breakers, so a balance read never opens one.
 */
export interface BalanceCheckDeps {
  database: Database;
  clock: Clock;
  config: Pick<Config, 'UPSTREAM_BALANCE_LOW_MINOR'>;
  logger: Logger;
}

export interface BalanceCheckResult {
  provider: string;
  amountMinor: number | null;
  currency: string;
  thresholdMinor: number;
  crossing: 'fell_below' | 'recovered' | 'unchanged' | 'unreadable' | 'no_threshold';
}

export async function checkUpstreamBalances(deps: BalanceCheckDeps, providers: readonly Provider[]): Promise<BalanceCheckResult[]> {
  const results: BalanceCheckResult[] = [];
  const controls = new Map((await readProviderControls(deps.database.db)).map((row) => [row.provider, row]));
  for (const provider of providers) {
    const row = controls.get(provider.name);
    // No threshold and no alert standing: nothing to watch, so no upstream call.
    if (balanceThreshold(row, deps.config.UPSTREAM_BALANCE_LOW_MINOR) === 0 && !row?.balanceLowSince) {
      results.push({ provider: provider.name, amountMinor: null, currency: '', thresholdMinor: 0, crossing: 'no_threshold' });
      continue;
    }
    let balance: { amountMinor: number | null; currency: string };
    try {
      balance = await provider.balance();
    } catch (error) {
      deps.logger.warn({ err: error, provider: provider.name }, 'could not read the balance at the upstream');
      results.push({ provider: provider.name, amountMinor: null, currency: '', thresholdMinor: 0, crossing: 'unreadable' });
      continue;
    }
    const now = deps.clock.now();
    const result = await deps.database.transaction(async (tx) => {
      const { crossing, thresholdMinor } = await recordBalanceReading(tx, {
        provider: provider.name,
        amountMinor: balance.amountMinor,
        currency: balance.currency,
        configuredThreshold: deps.config.UPSTREAM_BALANCE_LOW_MINOR,
        now,
      });
      if (crossing === 'fell_below') {
        const admins = await tx.select({ id: users.id }).from(users).where(and(eq(users.role, 'admin'), isNull(users.deletedAt)));
        const amount = formatMinor(balance.amountMinor ?? 0, balance.currency);
        const threshold = formatMinor(thresholdMinor, balance.currency);
        await notifyMany(
          tx,
          admins.map((admin) => ({
            userId: admin.id,
            verificationId: null,
            kind: 'upstream_balance_low' as const,
            title: `Low balance at ${provider.name}`,
            body: `Our balance at ${provider.name} is ${amount}, below the alert threshold of ${threshold}. Top it up before purchases start failing.`,
            now,
          })),
        );
      }
      return { crossing, thresholdMinor };
    });
    if (result.crossing === 'fell_below') deps.logger.warn({ provider: provider.name, balance_minor: balance.amountMinor }, 'upstream balance below its alert threshold');
    results.push({ provider: provider.name, amountMinor: balance.amountMinor, currency: balance.currency, ...result });
  }
  return results;
}
