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
