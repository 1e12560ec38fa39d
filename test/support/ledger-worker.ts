/**
 * A separate OS process sending random ledger traffic to a PostgreSQL database, for the multi-process
 * concurrency test:
 *
 *   node --import tsx test/support/ledger-worker.ts <databaseUrl> <seed> [operations] [sharedKeys]
 *
 * It works on every wallet in the database, prints {"ready":true} once connected, waits for a line
 * on stdin (so that all processes start together), runs the traffic, and prints {"tally":…} — what
 * succeeded — as its last line. Any unexpected error exits non-zero with the error on stderr.
 */
import { createInterface } from 'node:readline';
import { sql } from 'drizzle-orm';
import { openDatabase, rows } from '../../src/db/database.ts';
import { runRandomLedgerTraffic } from './ledger-invariants.ts';

const [databaseUrl, seedText, operationsText = '150', sharedKeysText = '0'] = process.argv.slice(2);
if (!databaseUrl || !seedText) {
  process.stderr.write('usage: ledger-worker.ts <databaseUrl> <seed> [operations] [sharedKeys]\n');
  process.exit(2);
}
const seed = Number(seedText);

async function waitForStart(): Promise<void> {
  const lines = createInterface({ input: process.stdin });
  await new Promise<void>((resolve, reject) => {
    lines.once('line', () => resolve());
    lines.once('close', () => reject(new Error('stdin closed before the start signal')));
  });
  lines.close();
}

async function main(): Promise<void> {
  const database = await openDatabase({ databaseUrl, poolSize: 6 });
  try {
    const userIds = (
      await rows<{ user_id: string }>(database.db, sql`SELECT user_id::text AS user_id FROM ledger_accounts WHERE kind = 'wallet' ORDER BY user_id`)
    ).map((r) => r.user_id);
    process.stdout.write(`${JSON.stringify({ ready: true, wallets: userIds.length })}\n`);
    await waitForStart();
    const tally = await runRandomLedgerTraffic(database, userIds, {
      seed,
      operations: Number(operationsText),
      keyPrefix: `worker-${process.pid}-${seed}`,
      sharedKeys: Number(sharedKeysText),
    });
    process.stdout.write(`${JSON.stringify({ tally })}\n`);
  } finally {
    await database.close();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`ledger worker (seed ${seed}) failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
    process.exit(1);
  },
);
