import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'drizzle-orm';
import pino from 'pino';
import { DEFAULT_ADMIN_EMAIL, creditUserWallet, ensureFirstAdmin } from '../../src/accounts/admin.ts';
import { createApiKey, listApiKeys, revokeApiKey, MAX_ACTIVE_API_KEYS } from '../../src/accounts/api-keys.ts';
import { resolveToken } from '../../src/accounts/credentials.ts';
import { createSession, revokeSession } from '../../src/accounts/sessions.ts';
import { decodeCursor } from '../../src/db/keyset.ts';
import { authenticateUser, createUser, findUserByEmail, listUsers } from '../../src/accounts/users.ts';
import { isDomainError } from '../../src/errors.ts';
import { isLedgerError } from '../../src/ledger/errors.ts';
import { walletOf } from '../../src/ledger/ledger.ts';
import { firstRow, rows } from '../../src/db/database.ts';
import { engines, freshDatabase, type TestDatabase } from '../support/db.ts';

const start = new Date('2026-01-01T00:00:00Z');
const at = (ms: number) => new Date(start.getTime() + ms);
const silent = pino({ level: 'silent' });
const options = { currency: 'USD', now: start };

async function count(t: TestDatabase, table: string): Promise<number> {
  const row = await firstRow<{ n: number }>(t.database.db, sql.raw(`SELECT count(*)::int AS n FROM ${table}`));
  return row!.n;
}

const code = (c: string) => (e: unknown) => isDomainError(e) && e.code === c;

for (const engine of engines) {
  describe(`accounts [${engine}]`, () => {
    let t: TestDatabase;
    before(async () => {
      t = await freshDatabase(engine);
    });
    after(() => t.dispose());

    test('a new user gets a wallet in the same transaction; emails are case-insensitive', async () => {
      const user = await createUser(t.database, { email: '  Alice@Example.COM ', password: 'password-1' }, options);
      assert.equal(user.email, 'alice@example.com');
      assert.equal(user.role, 'customer');
      const wallet = await walletOf(t.database.db, user.id);
      assert.deepEqual([wallet.balanceMinor, wallet.heldMinor, wallet.availableMinor, wallet.currency], [0, 0, 0, 'USD']);

      const users = await count(t, 'users');
      const wallets = await count(t, "ledger_accounts WHERE kind = 'wallet'");
      await assert.rejects(createUser(t.database, { email: 'ALICE@example.com', password: 'password-2' }, options), code('email_taken'));
      assert.equal(await count(t, 'users'), users);
      assert.equal(await count(t, "ledger_accounts WHERE kind = 'wallet'"), wallets);
      const stored = await firstRow<{ password_hash: string }>(t.database.db, sql`SELECT password_hash FROM users WHERE id = ${user.id}`);
      assert.match(stored!.password_hash, /^scrypt\$/);
    });

    test('invalid emails and passwords outside 8-200 characters are refused, nothing stored', async () => {
      const users = await count(t, 'users');
      await assert.rejects(createUser(t.database, { email: 'not-an-email', password: 'password-1' }, options), code('validation_failed'));
      await assert.rejects(createUser(t.database, { email: 'short@example.com', password: 'seven77' }, options), code('validation_failed'));
      await assert.rejects(createUser(t.database, { email: 'long@example.com', password: 'x'.repeat(201) }, options), code('validation_failed'));
      assert.equal(await count(t, 'users'), users);
    });

    test('wrong password and unknown email fail identically', async () => {
      await createUser(t.database, { email: 'bob@example.com', password: 'bob-password' }, options);
      assert.equal((await authenticateUser(t.database.db, 'BOB@example.com', 'bob-password')).email, 'bob@example.com');
      const wrong = await authenticateUser(t.database.db, 'bob@example.com', 'nope-nope').catch((e) => e);
      const unknown = await authenticateUser(t.database.db, 'nobody@example.com', 'nope-nope').catch((e) => e);
      assert.ok(isDomainError(wrong) && isDomainError(unknown));
      assert.deepEqual([wrong.code, wrong.message], [unknown.code, unknown.message]);
      assert.equal(wrong.code, 'unauthenticated');
    });

    test('sessions: stored hashed, expire, revocable', async () => {
      const user = await createUser(t.database, { email: 'carol@example.com', password: 'violet-harbor-12' }, options);
      const session = await createSession(t.database.db, user.id, { now: start, ttlHours: 2 });
      assert.match(session.token, /^nss_/);
      assert.equal(await count(t, `sessions WHERE token_hash = '${session.token}'`), 0, 'the token itself is never stored');
      assert.equal((await resolveToken(t.database.db, session.token, at(0)))?.principal.userId, user.id);
      assert.equal((await resolveToken(t.database.db, session.token, at(2 * 3_600_000 - 1)))?.csrfToken, session.csrfToken);
      assert.equal(await resolveToken(t.database.db, session.token, at(2 * 3_600_000)), undefined, 'expired at expires_at');
      await revokeSession(t.database.db, session.id, at(1));
      assert.equal(await resolveToken(t.database.db, session.token, at(2)), undefined, 'revoked');
      assert.equal(await resolveToken(t.database.db, 'nss_unknown', at(0)), undefined);
      assert.equal(await resolveToken(t.database.db, 'garbage', at(0)), undefined);
    });

    test('API keys: shown once, stored hashed, listed by prefix, revocable only by their owner', async () => {
      const dave = await createUser(t.database, { email: 'dave@example.com', password: 'granite-owl-34' }, options);
      const erin = await createUser(t.database, { email: 'erin@example.com', password: 'copper-fern-56' }, options);
      const key = await createApiKey(t.database.db, dave.id, 'script', start);
      assert.match(key.key, /^nsk_/);
      assert.equal(key.prefix, key.key.slice(0, 12));
      assert.equal(await count(t, `api_keys WHERE key_hash = '${key.key}'`), 0);

      const resolved = await resolveToken(t.database.db, key.key, at(1000));
      assert.deepEqual(resolved?.principal, { userId: dave.id, role: 'customer', via: 'api_key', twoFactor: false });
      const [listed] = await listApiKeys(t.database.db, dave.id);
      assert.equal(listed!.lastUsedAt?.toISOString(), at(1000).toISOString());
      assert.ok(!('key' in listed!));

      await assert.rejects(revokeApiKey(t.database.db, erin.id, key.id, at(2000)), code('not_found'));
      assert.ok(await resolveToken(t.database.db, key.key, at(3000)), 'still valid after a foreign revoke attempt');
      await revokeApiKey(t.database.db, dave.id, key.id, at(4000));
      await revokeApiKey(t.database.db, dave.id, key.id, at(5000));
      assert.equal(await resolveToken(t.database.db, key.key, at(6000)), undefined);
      const [revoked] = await listApiKeys(t.database.db, dave.id);
      assert.equal(revoked!.revokedAt?.toISOString(), at(4000).toISOString());
    });

    test('active API keys are bounded', async () => {
      const user = await createUser(t.database, { email: 'many@example.com', password: 'quiet-river-78' }, options);
      for (let i = 0; i < MAX_ACTIVE_API_KEYS; i++) await createApiKey(t.database.db, user.id, `k${i}`, start);
      await assert.rejects(createApiKey(t.database.db, user.id, 'one too many', start), code('conflict'));
    });

    test('admin credit: transfer and audit row commit together; refusals leave nothing behind', async () => {
      const admin = await createUser(t.database, { email: 'boss@example.com', password: 'north-lantern-90', role: 'admin' }, options);
      const user = await createUser(t.database, { email: 'frank@example.com', password: 'amber-tide-21' }, options);
      const actor = { kind: 'admin' as const, adminId: admin.id };
      const first = await creditUserWallet(t.database, { actor, userId: user.id, amountMinor: 1000, reason: 'welcome', now: start });
      assert.equal(first.wallet.availableMinor, 1000);
      const audit = await rows<{ actor_id: string; actor: string; action: string; subject_id: string; detail: Record<string, unknown> }>(
        t.database.db,
        sql`SELECT actor_id, actor, action, subject_id, detail FROM audit_log WHERE subject_id = ${user.id} AND action = 'wallet.credit'`,
      );
      assert.equal(audit.length, 1);
      assert.deepEqual(
        [audit[0]!.actor_id, audit[0]!.actor, audit[0]!.detail.transfer_id, audit[0]!.detail.amount_minor],
        [admin.id, 'admin', first.transferId, 1000],
      );

      const transfers = await count(t, 'ledger_transfers');
      const audits = await count(t, 'audit_log');
      await assert.rejects(
        creditUserWallet(t.database, { actor, userId: user.id, amountMinor: -1001, reason: 'too much', now: start }),
        (e) => isLedgerError(e, 'insufficient_funds'),
      );
      await assert.rejects(
        creditUserWallet(t.database, { actor, userId: '00000000-0000-4000-8000-000000000000', amountMinor: 5, reason: 'x', now: start }),
        code('not_found'),
      );
      for (const amountMinor of [0, 1.5, Number.NaN, 10 ** 13]) {
        await assert.rejects(creditUserWallet(t.database, { actor, userId: user.id, amountMinor, reason: 'x', now: start }), code('validation_failed'));
      }
      await assert.rejects(creditUserWallet(t.database, { actor, userId: user.id, amountMinor: 5, reason: '  ', now: start }), code('validation_failed'));
      assert.equal(await count(t, 'ledger_transfers'), transfers);
      assert.equal(await count(t, 'audit_log'), audits);
      assert.equal((await walletOf(t.database.db, user.id)).balanceMinor, 1000);
    });

    test('admin credit idempotency is scoped to the admin (or the operator)', async () => {
      const a1 = await createUser(t.database, { email: 'a1@example.com', password: 'a1-password', role: 'admin' }, options);
      const a2 = await createUser(t.database, { email: 'a2@example.com', password: 'a2-password', role: 'admin' }, options);
      const user = await createUser(t.database, { email: 'gina@example.com', password: 'silver-moss-43' }, options);
      const base = { userId: user.id, amountMinor: 300, reason: 'promo', idempotencyKey: 'promo-1', now: start };
      const x = await creditUserWallet(t.database, { ...base, actor: { kind: 'admin', adminId: a1.id } });
      const replay = await creditUserWallet(t.database, { ...base, actor: { kind: 'admin', adminId: a1.id } });
      const y = await creditUserWallet(t.database, { ...base, actor: { kind: 'admin', adminId: a2.id } });
      const z = await creditUserWallet(t.database, { ...base, actor: { kind: 'operator' } });
      assert.equal(replay.transferId, x.transferId);
      assert.equal(replay.replayed, true);
      assert.notEqual(y.transferId, x.transferId);
      assert.notEqual(z.transferId, x.transferId);
      assert.equal((await walletOf(t.database.db, user.id)).balanceMinor, 900);
      await assert.rejects(
        creditUserWallet(t.database, { ...base, amountMinor: 301, actor: { kind: 'admin', adminId: a1.id } }),
        (e) => isLedgerError(e, 'idempotency_key_reused'),
      );
      assert.equal((await walletOf(t.database.db, user.id)).balanceMinor, 900);
    });

    test('user list: balances, email search, keyset pages', async () => {
      const page1 = await listUsers(t.database.db, { limit: 3 });
      assert.equal(page1.items.length, 3);
      assert.ok(page1.nextCursor);
      const page2 = await listUsers(t.database.db, { limit: 3, after: decodeCursor(page1.nextCursor!) });
      assert.equal(new Set([...page1.items, ...page2.items].map((u) => u.id)).size, page1.items.length + page2.items.length);
      const all = await listUsers(t.database.db, { limit: 1000 });
      assert.equal(all.nextCursor, null);
      assert.equal(all.items.length, await count(t, 'users'));
      const frank = await listUsers(t.database.db, { limit: 10, query: 'FRANK@' });
      assert.deepEqual(
        frank.items.map((u) => [u.email, u.balanceMinor, u.availableMinor]),
        [['frank@example.com', 1000, 1000]],
      );
      assert.equal((await listUsers(t.database.db, { limit: 10, query: '%' })).items.length, 0, 'LIKE wildcards are literal');
    });
  });

  describe(`first admin [${engine}]`, () => {
    let t: TestDatabase;
    before(async () => {
      t = await freshDatabase(engine);
    });
    after(() => t.dispose());

    test('none configured and none existing: admin@namaskah.local with a password printed once, never logged', async () => {
      const printed: string[] = [];
      const logged: string[] = [];
      const logger = pino({ level: 'info' }, { write: (line: string) => void logged.push(line) });
      const first = await ensureFirstAdmin(t.database, { currency: 'USD', now: start, logger, print: (s) => printed.push(s) });
      assert.equal(first.created, true);
      assert.equal(printed.length, 1);
      const password = /password: (\S+)/.exec(printed[0]!)![1]!;
      const admin = await authenticateUser(t.database.db, DEFAULT_ADMIN_EMAIL, password);
      assert.equal(admin.role, 'admin');
      assert.ok(logged.length > 0 && !logged.join('').includes(password), 'the password is not in the log');
      assert.ok((await walletOf(t.database.db, admin.id)).accountId);

      const again = await ensureFirstAdmin(t.database, { currency: 'USD', now: start, logger, print: (s) => printed.push(s) });
      assert.deepEqual(again, { adminId: admin.id, created: false });
      assert.equal(printed.length, 1, 'printed once only');
    });

    test('ADMIN_EMAIL / ADMIN_PASSWORD: created once, password never overwritten, customers promoted', async () => {
      const print = () => assert.fail('nothing to print when the password is configured');
      const base = { currency: 'USD', now: start, logger: silent, print };
      const made = await ensureFirstAdmin(t.database, { ...base, email: 'Root@Example.com', password: 'cedar-signal-65' });
      assert.equal(made.created, true);
      assert.equal((await authenticateUser(t.database.db, 'root@example.com', 'cedar-signal-65')).role, 'admin');
      const again = await ensureFirstAdmin(t.database, { ...base, email: 'root@example.com', password: 'changed-password' });
      assert.deepEqual(again, { adminId: made.adminId, created: false });
      await authenticateUser(t.database.db, 'root@example.com', 'cedar-signal-65');

      const customer = await createUser(t.database, { email: 'later@example.com', password: 'maple-drift-87' }, options);
      const promoted = await ensureFirstAdmin(t.database, { ...base, email: 'later@example.com', password: 'whatever-pw' });
      assert.deepEqual(promoted, { adminId: customer.id, created: false });
      assert.equal((await findUserByEmail(t.database.db, 'later@example.com'))!.role, 'admin');

      await assert.rejects(ensureFirstAdmin(t.database, { ...base, password: 'no-email-pw' }), /ADMIN_EMAIL/);
      await assert.rejects(ensureFirstAdmin(t.database, { ...base, email: 'new@example.com', password: 'short' }), /password/);
    });
  });
}
