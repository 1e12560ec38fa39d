/**
 * The SQL statements one HTTP purchase sends (docs/performance.md, "Per purchase"): every query
 * the pg driver is given while one POST /v1/verifications is answered, counted by wrapping the
 * driver, for three purchases in a row with one API key (the first also resolves the key).
 * Run: TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npx tsx bench/statements.ts
 */
import pg from 'pg';
import { startTestApp } from '../test/support/app.ts';
import { registerUser } from '../test/support/http.ts';
import { sql } from 'drizzle-orm';

let counting = false;
const seen: string[] = [];
for (const proto of [pg.Pool.prototype, pg.Client.prototype] as any[]) {
  const original = proto.query;
  proto.query = function (this: unknown, ...args: any[]) {
    if (counting && !(this instanceof pg.Pool)) {
      const q = args[0];
      seen.push(typeof q === 'string' ? q : q?.text ?? String(q));
    }
    return original.apply(this, args);
  };
}
const app = await startTestApp({ engine: 'postgres', worker: false });
try {
  const user = await registerUser(app.url);
  const key = (await user.client.post('/v1/api-keys', { name: 'k' })).body.key as string;
  await app.ctx.database.db.execute(sql`INSERT INTO ledger_transfers (debit_account_id, credit_account_id, amount_minor, kind, actor, reason, created_at)
     SELECT (SELECT id FROM ledger_accounts WHERE code = 'funding'), (SELECT id FROM ledger_accounts WHERE user_id = ${user.id}), 100000, 'topup', 'admin', 'x', now()`);
  for (let i = 0; i < 3; i++) {
    seen.length = 0;
    counting = true;
    const r = await fetch(`${app.url}/v1/verifications`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'idempotency-key': `k-${i}` }, body: JSON.stringify({ service: 'test_timeout', country: 'US' }) });
    await r.text();
    counting = false;
    console.log(`purchase ${i + 1}: status ${r.status}, ${seen.length} statements:`);
    for (const s of seen) console.log('   ', s.replace(/\s+/g, ' ').slice(0, 110));
  }
} finally {
  await app.close();
}
