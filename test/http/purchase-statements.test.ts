import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { sql } from 'drizzle-orm';
import { testDatabaseUrl } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { registerUser } from '../support/http.ts';
import { publishPending } from '../../src/events/bus.ts';

/**
 * The purchase's cost in statements (docs/performance.md, "Per purchase"): a steady purchase sends
 * the reservation and the outcome, nothing else, and the answer is still the full resource. Counted
 * at the pg driver, so PostgreSQL only.
 */
describe('a purchase sends two statements [postgres]', { skip: testDatabaseUrl ? false : 'TEST_DATABASE_URL is not set' }, () => {
  let app: TestApp;
  const sent: string[] = [];
  let counting = false;
  const original = pg.Client.prototype.query;
  before(async () => {
    // Every pooled query goes through a client's query: counted once each.
    pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
      if (counting) {
        const q = args[0] as string | { text?: string };
        sent.push(typeof q === 'string' ? q : (q.text ?? ''));
      }
      return (original as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof original;
    app = await startTestApp({ engine: 'postgres', worker: false });
  });
  after(async () => {
    pg.Client.prototype.query = original;
    await app.close();
  });

  test('the reservation and the outcome only, once the key is known; the answer is the full verification', async () => {
    const user = await registerUser(app.url);
    const created = await user.client.post('/v1/api-keys', { name: 'statements' });
    assert.equal(created.status, 201, created.text);
    await app.ctx.database.db.execute(sql`
      INSERT INTO ledger_transfers (debit_account_id, credit_account_id, amount_minor, kind, actor, reason, created_at)
      SELECT (SELECT id FROM ledger_accounts WHERE code = 'funding'), (SELECT id FROM ledger_accounts WHERE user_id = ${user.id}),
             10000, 'topup', 'admin', 'test funds', now()`);
    const buy = async (key: string) => {
      sent.length = 0;
      counting = true;
      try {
        const response = await fetch(`${app.url}/v1/verifications`, {
          method: 'POST',
          headers: { authorization: `Bearer ${created.body.key}`, 'content-type': 'application/json', 'idempotency-key': key },
          body: JSON.stringify({ service: 'test_timeout', country: 'US' }),
        });
        return { status: response.status, body: (await response.json()) as Record<string, unknown> };
      } finally {
        counting = false;
      }
    };
    await buy('first');
    await publishPending();
    const second = await buy('second');
    assert.equal(second.status, 201);
    counting = true;
    await publishPending();
    counting = false;
    const names = sent.map((s) => /FROM (\w+)\(/.exec(s)?.[1] ?? s);
    // The purchase's own statements: the reservation and the outcome.
    assert.deepEqual(
      names.filter((n) => n !== 'json_array_elements_text'),
      ['verification_reserve_purchase', 'verification_assign_number'],
    );
    // Its live events (the wallet, the verification) go out after the commit in batches shared with
    // whatever else this process published meanwhile: one statement per batch, one or two here.
    const batches = names.filter((n) => n === 'json_array_elements_text').length;
    assert.ok(batches >= 1 && batches <= 2, `live-event batches: ${batches}`);
    // Built from what the writes returned, and the same as reading it back.
    const read = await user.client.get(`/v1/verifications/${second.body.id as string}`);
    assert.equal(read.status, 200);
    assert.deepEqual(second.body, read.body);
    assert.equal(second.body.state, 'waiting');
  });
});
