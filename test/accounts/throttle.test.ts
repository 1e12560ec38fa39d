import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'drizzle-orm';
import {
  bucketOf,
  clientAddressKey,
  consumeAttempt,
  throttleVerdict,
  windowOf,
  type AttemptLimit,
} from '../../src/accounts/throttle.ts';
import { firstRow, openDatabase, type Database } from '../../src/db/database.ts';
import { isDomainError } from '../../src/errors.ts';
import { engines, freshDatabase, type TestDatabase } from '../support/db.ts';

const limit = (overrides: Partial<AttemptLimit> = {}): AttemptLimit => ({
  action: 'login',
  scope: 'account',
  subject: 'alice@example.test',
  max: 3,
  windowSeconds: 60,
  ...overrides,
});

describe('throttle decisions (pure)', () => {
  test('allowed up to max; refused beyond, retry when the latest refusing window ends', () => {
    const now = new Date('2026-03-01T12:00:10Z');
    const account = limit();
    const address = limit({ scope: 'address', subject: '203.0.113.9', max: 10, windowSeconds: 3600 });
    assert.deepEqual(throttleVerdict([{ limit: account, attempts: 3, windowEnd: new Date('2026-03-01T12:01:00Z') }], now), { allowed: true });
    assert.deepEqual(throttleVerdict([{ limit: account, attempts: 4, windowEnd: new Date('2026-03-01T12:01:00Z') }], now), {
      allowed: false,
      retryAfterSeconds: 50,
      limit: account,
    });
    const both = throttleVerdict(
      [
        { limit: account, attempts: 4, windowEnd: new Date('2026-03-01T12:01:00Z') },
        { limit: address, attempts: 11, windowEnd: new Date('2026-03-01T13:00:00Z') },
      ],
      now,
    );
    assert.deepEqual(both, { allowed: false, retryAfterSeconds: 3590, limit: address });
    // Never "retry in 0 s".
    const atEnd = throttleVerdict([{ limit: account, attempts: 9, windowEnd: now }], now);
    assert.equal(atEnd.allowed === false && atEnd.retryAfterSeconds, 1);
  });

  test('windows are aligned to the epoch, so every process agrees', () => {
    assert.deepEqual(windowOf(new Date('2026-03-01T12:00:59.999Z'), 60), {
      start: new Date('2026-03-01T12:00:00Z'),
      end: new Date('2026-03-01T12:01:00Z'),
    });
    assert.deepEqual(windowOf(new Date('2026-03-01T12:59:00Z'), 3600).start, new Date('2026-03-01T12:00:00Z'));
  });

  test('buckets never hold the subject in clear', () => {
    const bucket = bucketOf(limit());
    assert.match(bucket, /^login:account:[0-9a-f]{64}$/);
    assert.ok(!bucket.includes('alice'));
    assert.notEqual(bucketOf(limit({ scope: 'address' })), bucket);
  });

  test('client addresses: IPv4 as is (also IPv4-mapped), IPv6 by its /64', () => {
    assert.equal(clientAddressKey('203.0.113.9'), '203.0.113.9');
    assert.equal(clientAddressKey('::ffff:203.0.113.9'), '203.0.113.9');
    assert.equal(clientAddressKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
    assert.equal(clientAddressKey('2001:db8:1:2:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64');
    assert.notEqual(clientAddressKey('2001:db8:1:3::1'), clientAddressKey('2001:db8:1:2::1'));
    assert.equal(clientAddressKey('not an address'), 'not an address');
  });
});

async function refusal(work: Promise<unknown>): Promise<{ seconds: number; message: string } | undefined> {
  try {
    await work;
    return undefined;
  } catch (error) {
    if (!isDomainError(error) || error.code !== 'rate_limited') throw error;
    assert.equal(error.headers['retry-after'], String(error.extra.retry_after_seconds));
    return { seconds: Number(error.headers['retry-after']), message: error.message };
  }
}

for (const engine of engines) {
  describe(`attempts counted in the database [${engine}]`, () => {
    let t: TestDatabase;
    before(async () => {
      t = await freshDatabase(engine);
    });
    after(() => t.dispose());

    test('each attempt counts against every limit; the first over a limit is refused until its window ends', async () => {
      const account = limit({ subject: 'counted@example.test' });
      const address = limit({ scope: 'address', subject: '198.51.100.1', max: 5 });
      const now = new Date('2026-03-01T12:00:15Z');
      for (let i = 0; i < 3; i++) assert.equal(await refusal(consumeAttempt(t.database.db, [account, address], now)), undefined);
      const refused = await refusal(consumeAttempt(t.database.db, [account, address], now));
      assert.deepEqual(refused, { seconds: 45, message: 'too many login attempts for this account; retry in 45 s' });
      // Another account from the same address still has its own budget, until the address runs out.
      const other = limit({ subject: 'other@example.test' });
      assert.equal(await refusal(consumeAttempt(t.database.db, [other, address], now)), undefined);
      const byAddress = await refusal(consumeAttempt(t.database.db, [other, address], now));
      assert.equal(byAddress?.message, 'too many login attempts from this address; retry in 45 s');
      // The next window starts afresh.
      assert.equal(await refusal(consumeAttempt(t.database.db, [account, address], new Date('2026-03-01T12:01:00Z'))), undefined);
    });

    test('expired windows are pruned as attempts come in', async () => {
      const base = new Date('2026-03-02T08:00:00Z');
      for (let i = 0; i < 20; i++) await consumeAttempt(t.database.db, [limit({ subject: `spray-${i}@example.test` })], base);
      const count = async () => (await firstRow<{ n: number }>(t.database.db, sql`SELECT count(*)::int AS n FROM auth_attempts WHERE window_end <= ${new Date('2026-03-02T08:01:00Z')}`))!.n;
      assert.ok((await count()) >= 20);
      await consumeAttempt(t.database.db, [limit({ subject: 'later@example.test' })], new Date('2026-03-02T09:00:00Z'));
      assert.equal(await count(), 0);
    });

    if (engine === 'postgres') {
      test('concurrent attempts from several connections: exactly max get through', async () => {
        // Separate pools: as separate API processes would hold.
        const pools: Database[] = [];
        for (let i = 0; i < 4; i++) pools.push(await openDatabase({ databaseUrl: t.databaseUrl!, poolSize: 5 }));
        try {
          const shared = limit({ subject: 'contended@example.test', max: 7 });
          const now = new Date('2026-03-03T10:00:00Z');
          const outcomes = await Promise.all(
            Array.from({ length: 40 }, (_, i) => refusal(consumeAttempt(pools[i % pools.length]!.db, [shared], now))),
          );
          assert.equal(outcomes.filter((o) => o === undefined).length, 7);
          const row = await firstRow<{ attempts: number }>(t.database.db, sql`SELECT attempts FROM auth_attempts WHERE bucket = ${bucketOf(shared)}`);
          assert.equal(row?.attempts, 40);
        } finally {
          for (const pool of pools) await pool.close();
        }
      });
    }
  });
}
