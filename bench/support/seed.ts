import { sql } from 'drizzle-orm';
import { createApiKey } from '../../src/accounts/api-keys.ts';
import { firstRow, type Database } from '../../src/db/database.ts';
import { creditWallet, openWallet } from '../../src/ledger/ledger.ts';

/**
 * Benchmark customers, made through the application's own ledger and API-key functions (the
 * ledger's triggers keep every balance exact). They sign in with API keys only, so their stored
 * password hash is a placeholder instead of a costly scrypt hash nobody will ever check.
 */
export interface BenchCustomer {
  userId: string;
  apiKey: string;
}

export async function createCustomers(
  database: Database,
  options: { count: number; fundsMinor: number; currency: string; now: Date; label: string; apiKeys?: boolean },
): Promise<BenchCustomer[]> {
  const customers: BenchCustomer[] = [];
  for (let i = 0; i < options.count; i++) {
    const customer = await database.transaction(async (tx) => {
      const user = await firstRow<{ id: string }>(
        tx,
        sql`INSERT INTO users (email, password_hash, created_at)
            VALUES (${`${options.label}-${i}@bench.example.test`}, 'bench-no-password', ${options.now}) RETURNING id`,
      );
      const userId = user!.id;
      await openWallet(tx, userId, options.currency, options.now);
      await creditWallet(tx, {
        userId,
        amountMinor: options.fundsMinor,
        kind: 'topup',
        actor: 'admin',
        reason: 'benchmark funds',
        now: options.now,
      });
      const key = options.apiKeys === false ? '' : (await createApiKey(tx, userId, 'bench', options.now)).key;
      return { userId, apiKey: key };
    });
    customers.push(customer);
  }
  return customers;
}

/**
 * `count` verifications waiting for an SMS that never comes (sandbox `test_timeout`, as if each had
 * been bought), spread over `userIds`, with their holds (through the ledger's triggers, so every
 * balance stays exact), audit events and staggered next checks: the queue the engine works through
 * while purchases are measured. Their deadlines lie `ttlSeconds` ahead, beyond the measured windows.
 */
export async function seedWaitingVerifications(
  database: Database,
  options: { userIds: readonly string[]; count: number; priceMinor: number; currency: string; now: Date; ttlSeconds: number; pollIntervalMs: number },
): Promise<void> {
  const users = options.userIds.map((id) => `'${id.replace(/[^0-9a-f-]/gi, '')}'::uuid`).join(',');
  const now = `'${options.now.toISOString()}'::timestamptz`;
  const chunk = 20_000;
  for (let from = 0; from < options.count; from += chunk) {
    const to = Math.min(options.count, from + chunk) - 1;
    await database.runScript(`
      CREATE TEMP TABLE bench_seed ON COMMIT DROP AS
        SELECT gen_random_uuid() AS vid, gen_random_uuid() AS hid, u.user_id, a.id AS account_id, g
        FROM generate_series(${from}, ${to}) g
        JOIN (SELECT user_id, (row_number() OVER (ORDER BY user_id)) - 1 AS i FROM unnest(ARRAY[${users}]) AS user_id) u
          ON u.i = g % ${options.userIds.length}
        JOIN ledger_accounts a ON a.user_id = u.user_id;
      INSERT INTO ledger_holds (id, account_id, amount_minor, verification_id, expires_at, actor, created_at)
        SELECT hid, account_id, ${options.priceMinor}, vid, ${now} + interval '${options.ttlSeconds} seconds', 'customer', ${now} FROM bench_seed;
      INSERT INTO verifications (id, user_id, provider, service, country, state, price_minor, max_cost_minor, currency,
                                 idempotency_key, request_fingerprint, hold_id, phone_number, provider_order_id,
                                 created_at, updated_at, expires_at, next_check_at, upstream_status, response_status)
        SELECT vid, user_id, 'sandbox', 'test_timeout', 'US', 'waiting', ${options.priceMinor}, ${Math.max(1, Math.floor(options.priceMinor / 2))}, '${options.currency}',
               'bench-waiting-' || g, 'bench', hid, '1555' || lpad((g % 10000000)::text, 7, '0'), 'sbx-test_timeout:' || vid,
               ${now}, ${now}, ${now} + interval '${options.ttlSeconds} seconds',
               ${now} + (g % ${Math.max(1, options.pollIntervalMs)}) * interval '1 millisecond', 'open', 201
        FROM bench_seed;
      INSERT INTO verification_events (verification_id, from_state, to_state, actor, reason, created_at)
        SELECT vid, NULL, 'pending', 'customer', 'purchase requested', ${now} FROM bench_seed
        UNION ALL SELECT vid, 'pending', 'waiting', 'customer', 'number assigned', ${now} FROM bench_seed;
    `);
  }
}
