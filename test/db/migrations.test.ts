import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'drizzle-orm';
import { loadConfig } from '../../src/config.ts';
import { firstRow } from '../../src/db/database.ts';
import {
  BREAKS_PREVIOUS_RELEASE_MARKER,
  loadMigrations,
  migrate,
  migrationStatus,
  SchemaNewerThanCodeError,
} from '../../src/db/migrate.ts';
import { walletHistory } from '../../src/ledger/ledger.ts';
import { diagnose } from '../../src/ops/diagnose.ts';
import { reconcile } from '../../src/ops/reconcile.ts';
import { createVerificationRuntime } from '../../src/runtime.ts';
import pino from 'pino';
import { ManualClock } from '../support/clock.ts';
import { dataSnapshot } from '../support/data-snapshot.ts';
import { engines, freshDatabase } from '../support/db.ts';

/**
 * Upgrades: a database created and filled under an earlier schema migrates to the current one with
 * every row intact; a database a newer release changed incompatibly is refused; and every migration
 * keeps to the rolling-upgrade rule (docs/operations.md, "Upgrades").
 */

/**
 * The earlier schema the fill below is written for: every migration numbered up to this one. Each
 * migration after it (all of today's and tomorrow's) is applied on top of real rows by the test.
 */
const BASELINE = 5;

const U1 = '00000000-0000-4000-8000-0000000000a1';
const U2 = '00000000-0000-4000-8000-0000000000a2';
const v = (n: number) => `00000000-0000-4000-8000-0000000001${String(n).padStart(2, '0')}`;
const h = (n: number) => `00000000-0000-4000-8000-0000000002${String(n).padStart(2, '0')}`;
const T0 = '2026-01-01T00:00:00Z';
const LATER = '2026-01-01T00:20:00Z';

/**
 * Rows as the earlier release wrote them, in plain SQL of the baseline schema: two customers with
 * top-ups, verifications in every state (received with its charge and message, cancelled, expired,
 * failed, waiting and pending with their holds unresolved, a cancel still owed upstream, a wrong
 * capture put right by a correction), their events and notifications, an audit row. The ledger's
 * triggers check every movement, so this cannot describe money that the ledger would refuse.
 */
const FILL = `
INSERT INTO users (id, email, password_hash, role, created_at) VALUES
  ('${U1}', 'alice@example.test', 'scrypt$old', 'customer', '${T0}'),
  ('${U2}', 'bob@example.test', 'scrypt$old', 'customer', '${T0}');
INSERT INTO ledger_accounts (kind, code, currency, may_overdraw, created_at) VALUES
  ('system', 'funding', 'USD', true, '${T0}'), ('system', 'revenue', 'USD', false, '${T0}'), ('system', 'adjustments', 'USD', true, '${T0}');
INSERT INTO ledger_accounts (kind, user_id, currency, created_at) VALUES ('wallet', '${U1}', 'USD', '${T0}'), ('wallet', '${U2}', 'USD', '${T0}');
INSERT INTO ledger_transfers (debit_account_id, credit_account_id, amount_minor, kind, idempotency_key, actor, reason, created_at)
  SELECT f.id, w.id, amount, 'topup', key, 'operator', 'opening balance', '${T0}'
  FROM ledger_accounts f, (VALUES ('${U1}'::uuid, 1000, 'topup-alice'), ('${U2}'::uuid, 300, 'topup-bob')) AS t(user_id, amount, key)
  JOIN ledger_accounts w ON w.user_id = t.user_id
  WHERE f.code = 'funding';
INSERT INTO services (provider, service, country, name, price_minor, cost_minor) VALUES ('sandbox', 'whatsapp', 'US', 'WhatsApp', 50, 30);
INSERT INTO ledger_holds (id, account_id, amount_minor, verification_id, expires_at, actor, created_at)
  SELECT hold_id, w.id, 50, verification_id, '${LATER}', 'customer', '${T0}'
  FROM (VALUES ('${h(1)}'::uuid, '${v(1)}'::uuid, '${U1}'::uuid), ('${h(2)}', '${v(2)}', '${U1}'), ('${h(3)}', '${v(3)}', '${U1}'),
               ('${h(4)}', '${v(4)}', '${U1}'), ('${h(5)}', '${v(5)}', '${U1}'), ('${h(6)}', '${v(6)}', '${U2}'),
               ('${h(7)}', '${v(7)}', '${U2}'), ('${h(8)}', '${v(8)}', '${U2}')) AS t(hold_id, verification_id, user_id)
  JOIN ledger_accounts w ON w.user_id = t.user_id;
INSERT INTO verifications (id, user_id, provider, service, country, state, price_minor, max_cost_minor, currency, idempotency_key,
                           request_fingerprint, hold_id, phone_number, provider_order_id, code, created_at, updated_at, expires_at,
                           resolved_at, upstream_status, upstream_next_at, next_check_at) VALUES
  ('${v(1)}', '${U1}', 'sandbox', 'whatsapp', 'US', 'received',  50, 30, 'USD', 'k1', 'f', '${h(1)}', '+15550000001', 'o1', '123456', '${T0}', '${T0}', '${LATER}', '${T0}', 'completed', NULL, NULL),
  ('${v(2)}', '${U1}', 'sandbox', 'whatsapp', 'US', 'cancelled', 50, 30, 'USD', 'k2', 'f', '${h(2)}', '+15550000002', 'o2', NULL, '${T0}', '${T0}', '${LATER}', '${T0}', 'cancelled', NULL, NULL),
  ('${v(3)}', '${U1}', 'sandbox', 'whatsapp', 'US', 'expired',   50, 30, 'USD', 'k3', 'f', '${h(3)}', '+15550000003', 'o3', NULL, '${T0}', '${T0}', '${T0}', '${T0}', 'cancelled', NULL, NULL),
  ('${v(4)}', '${U1}', 'sandbox', 'whatsapp', 'US', 'waiting',   50, 30, 'USD', 'k4', 'f', '${h(4)}', '+15550000004', 'o4', NULL, '${T0}', '${T0}', '${LATER}', NULL, 'open', NULL, '${LATER}'),
  ('${v(5)}', '${U1}', 'sandbox', 'whatsapp', 'US', 'pending',   50, 30, 'USD', 'k5', 'f', '${h(5)}', NULL, NULL, NULL, '${T0}', '${T0}', '${LATER}', NULL, 'none', NULL, '${LATER}'),
  ('${v(6)}', '${U2}', 'sandbox', 'whatsapp', 'US', 'failed',    50, 30, 'USD', 'k6', 'f', '${h(6)}', NULL, NULL, NULL, '${T0}', '${T0}', '${LATER}', '${T0}', 'none', NULL, NULL),
  ('${v(7)}', '${U2}', 'sandbox', 'whatsapp', 'US', 'cancelled', 50, 30, 'USD', 'k7', 'f', '${h(7)}', '+15550000007', 'o7', NULL, '${T0}', '${T0}', '${LATER}', '${T0}', 'cancel_owed', '${LATER}', NULL),
  ('${v(8)}', '${U2}', 'sandbox', 'whatsapp', 'US', 'expired',   50, 30, 'USD', 'k8', 'f', '${h(8)}', '+15550000008', 'o8', NULL, '${T0}', '${T0}', '${T0}', '${T0}', 'cancelled', NULL, NULL);
UPDATE verifications SET purchase_until = '${LATER}' WHERE id = '${v(5)}';
INSERT INTO ledger_hold_resolutions (hold_id, outcome, actor, created_at) VALUES
  ('${h(1)}', 'posted', 'poller', '${T0}'), ('${h(2)}', 'voided', 'customer', '${T0}'), ('${h(3)}', 'expired', 'sweeper', '${T0}'),
  ('${h(6)}', 'voided', 'customer', '${T0}'), ('${h(7)}', 'voided', 'customer', '${T0}'), ('${h(8)}', 'posted', 'poller', '${T0}');
INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, amount_minor, kind, hold_id, verification_id, actor, created_at)
  SELECT charge_id, w.id, r.id, 50, 'verification_charge', hold_id, verification_id, 'poller', '${T0}'
  FROM (VALUES ('00000000-0000-4000-8000-000000000301'::uuid, '${h(1)}'::uuid, '${v(1)}'::uuid, '${U1}'::uuid),
               ('00000000-0000-4000-8000-000000000308', '${h(8)}', '${v(8)}', '${U2}')) AS t(charge_id, hold_id, verification_id, user_id)
  JOIN ledger_accounts w ON w.user_id = t.user_id, ledger_accounts r WHERE r.code = 'revenue';
-- v8 expired but was captured: put right by a correction keyed by its charge.
INSERT INTO ledger_transfers (debit_account_id, credit_account_id, amount_minor, kind, idempotency_key, verification_id, actor, reason, created_at)
  SELECT r.id, w.id, 50, 'adjustment', 'charge-refund:00000000-0000-4000-8000-000000000308', '${v(8)}', 'reconciler', 'captured after expiry', '${T0}'
  FROM ledger_accounts r, ledger_accounts w WHERE r.code = 'revenue' AND w.user_id = '${U2}';
INSERT INTO verification_events (verification_id, from_state, to_state, actor, reason, created_at) VALUES
  ('${v(1)}', NULL, 'pending', 'customer', NULL, '${T0}'), ('${v(1)}', 'pending', 'waiting', 'customer', NULL, '${T0}'), ('${v(1)}', 'waiting', 'received', 'poller', NULL, '${T0}'),
  ('${v(2)}', 'waiting', 'cancelled', 'customer', NULL, '${T0}'), ('${v(3)}', 'waiting', 'expired', 'sweeper', NULL, '${T0}'),
  ('${v(4)}', 'pending', 'waiting', 'customer', NULL, '${T0}'), ('${v(5)}', NULL, 'pending', 'customer', NULL, '${T0}'),
  ('${v(6)}', 'pending', 'failed', 'customer', 'no numbers', '${T0}'), ('${v(7)}', 'waiting', 'cancelled', 'customer', 'upstream unreachable', '${T0}'),
  ('${v(8)}', 'waiting', 'expired', 'sweeper', NULL, '${T0}');
INSERT INTO verification_messages (verification_id, provider_message_id, text, code, received_at, late, created_at) VALUES
  ('${v(1)}', 'm1', 'Your code is 123456', '123456', '${T0}', false, '${T0}'),
  ('${v(3)}', 'm3', 'Your code is 654321', '654321', '${T0}', true, '${T0}');
INSERT INTO notifications (user_id, verification_id, kind, title, body, created_at) VALUES
  ('${U1}', '${v(1)}', 'code_received', 'Code received', '123456', '${T0}'),
  ('${U1}', '${v(2)}', 'refund_issued', 'Refunded', '0.50', '${T0}');
INSERT INTO audit_log (actor_id, actor, action, subject_id, created_at) VALUES (NULL, 'cli', 'wallet.credit', '${U1}', '${T0}');
`;

/** What the rolling-upgrade rule forbids without the marker: statements that remove or change what the previous release uses. */
const BREAKING = [
  { what: 'DROP (a table, column, view, function, constraint, index…)', pattern: /\bDROP\s+(?!DEFAULT\b)/i },
  { what: 'RENAME', pattern: /\bRENAME\b/i },
  { what: 'a column type change', pattern: /\bALTER\s+COLUMN\s+\S+\s+(SET\s+DATA\s+)?TYPE\b/i },
  { what: 'SET NOT NULL on an existing column', pattern: /\bSET\s+NOT\s+NULL\b/i },
  { what: 'a new NOT NULL column without a DEFAULT', pattern: /\bADD\s+(COLUMN\s+)?(IF\s+NOT\s+EXISTS\s+)?\S+\s+[^,;]*\bNOT\s+NULL\b(?![^,;]*\bDEFAULT\b)[^,;]*[,;]/i },
  { what: 'CREATE OR REPLACE (a view or function the previous release reads)', pattern: /\bCREATE\s+OR\s+REPLACE\b/i },
];

/**
 * A statement the line above vouches for (`-- rolling-upgrade: compatible: <why>`): it matches a
 * pattern above but leaves the previous release working, e.g. a CHECK replaced by a wider one, an
 * index rebuilt, or SET NOT NULL on a column that has a default. The vouching covers that one
 * statement only.
 */
const COMPATIBLE = /^--\s*rolling-upgrade:\s*compatible\b[^\n]*\n[^;]*;/gim;

function withoutComments(script: string): string {
  script = script.replace(COMPATIBLE, '');
  return script.replace(/--[^\n]*/g, '').replace(/\/\*[\s\S]*?\*\//g, '');
}

describe('migrations: the rolling-upgrade rule', () => {
  test('a migration that removes or changes something carries the marker (and only such a migration needs it)', () => {
    const offenders: string[] = [];
    for (const migration of loadMigrations()) {
      if (migration.breaksPreviousRelease) continue;
      for (const { what, pattern } of BREAKING) {
        if (pattern.test(withoutComments(migration.script))) offenders.push(`${migration.version}: ${what}`);
      }
    }
    assert.deepEqual(
      offenders,
      [],
      `these migrations would break the previous release during a rolling upgrade; split them (add now, remove a release later) or mark them with "${BREAKS_PREVIOUS_RELEASE_MARKER}"`,
    );
  });

  test('the checker sees what it must', () => {
    const breaking = [
      'ALTER TABLE verifications DROP COLUMN code;',
      'ALTER TABLE users RENAME COLUMN email TO mail;',
      'ALTER TABLE users ALTER COLUMN role TYPE varchar(20);',
      'ALTER TABLE users ALTER COLUMN role SET NOT NULL;',
      'ALTER TABLE users ADD COLUMN tier text NOT NULL;',
      'DROP INDEX users_created_idx;',
      'CREATE OR REPLACE VIEW ledger_hold_outcomes AS SELECT 1;',
    ];
    const additive = [
      'ALTER TABLE users ADD COLUMN tier text NOT NULL DEFAULT \'basic\';',
      'ALTER TABLE users ADD COLUMN note text;',
      'CREATE TABLE x (id int NOT NULL);',
      'ALTER TABLE users ALTER COLUMN role DROP DEFAULT;',
      '-- we never DROP anything here\nCREATE INDEX i ON users (email);',
      '-- rolling-upgrade: compatible: rebuilt with a wider predicate\nDROP INDEX i;\nCREATE INDEX i ON users (email);',
    ];
    breaking.push('-- rolling-upgrade: compatible: only the next statement\nDROP INDEX i;\nDROP TABLE users;');
    const flagged = (script: string) => BREAKING.some(({ pattern }) => pattern.test(withoutComments(script)));
    for (const s of breaking) assert.ok(flagged(s), s);
    for (const s of additive) assert.ok(!flagged(s), s);
  });
});

for (const engine of engines) {
  describe(`migrations: upgrading a database full of rows [${engine}]`, () => {
    test(`a database filled under the schema up to ${String(BASELINE).padStart(4, '0')} migrates to the current one with every row intact`, async () => {
      const all = loadMigrations();
      const earlier = all.filter((m) => Number(m.version.slice(0, 4)) <= BASELINE);
      const later = all.filter((m) => Number(m.version.slice(0, 4)) > BASELINE);
      assert.ok(earlier.length > 0 && later.length > 0, 'there are migrations on both sides of the baseline');

      const t = await freshDatabase(engine, { migrations: earlier, system: false });
      try {
        await t.database.runScript(FILL);
        const before = await dataSnapshot(t.database.db);
        assert.deepEqual(
          (await migrationStatus(t.database)).pending,
          later.map((m) => m.version),
        );

        const applied = await migrate(t.database, { databaseUrl: t.databaseUrl });
        assert.deepEqual(applied, later.map((m) => m.version));
        const status = await migrationStatus(t.database);
        assert.deepEqual([status.pending, status.newer], [[], []]);

        const after = await dataSnapshot(t.database.db);
        assert.deepEqual(after, before);
        // The numbers the test put in, read back through the current code.
        type W = { owner: string; posted: string; held: string; available: string };
        const wallets = Object.fromEntries((after.wallets as W[]).map((w) => [w.owner, [w.posted, w.held, w.available]]));
        assert.deepEqual(wallets['alice@example.test'], ['950', '100', '850']);
        assert.deepEqual(wallets['bob@example.test'], ['300', '0', '300']);
        const history = await walletHistory(t.database.db, U1, { limit: 50 });
        const types = history.items.map((i) => i.type).sort();
        assert.deepEqual(types, [
          'topup', 'verification_charge', ...Array(5).fill('verification_hold'), 'verification_refund', 'verification_refund',
        ].sort());
        assert.equal(history.items.reduce((sum, i) => sum + i.amountMinor, 0), 850, 'the history adds up to the available balance');

        // The current code's checks pass on the upgraded data, and its repairs find nothing to do
        // but the cancel the earlier release left owed.
        const clock = new ManualClock('2026-01-01T00:05:00Z');
        const config = loadConfig({ LOG_LEVEL: 'silent' });
        const report = await diagnose({ database: t.database, clock, config });
        assert.deepEqual(report.checks.filter((c) => !c.ok), []);
        assert.equal(report.upstream_settlement_owed.count, 1);
        const runtime = createVerificationRuntime({ config, database: t.database, clock, logger: pino({ level: 'silent' }) });
        const found = await reconcile(runtime.deps, { days: 30, execute: false });
        assert.deepEqual(found.found.map((f) => [f.kind, f.verification_id]), [['upstream_cancel_owed', v(7)]]);
      } finally {
        await t.dispose();
      }
    });

    test('a newer release’s migration: refused when it may break this release, run against when it only added', async () => {
      const t = await freshDatabase(engine);
      try {
        const record = (version: string, breaks: boolean | null) =>
          t.database.db.execute(sql`INSERT INTO schema_migrations (version, breaks_previous_release) VALUES (${version}, ${breaks})`);

        await record('9998_added_by_newer_release', false);
        assert.deepEqual(await migrate(t.database, { databaseUrl: t.databaseUrl }), []);
        const additive = await migrationStatus(t.database);
        assert.deepEqual(
          additive.newer.map((m) => m.version),
          ['9998_added_by_newer_release'],
        );
        assert.deepEqual(additive.incompatible, []);

        await record('9999_dropped_by_newer_release', true);
        await assert.rejects(migrate(t.database, { databaseUrl: t.databaseUrl }), (error: unknown) => {
          assert.ok(error instanceof SchemaNewerThanCodeError);
          assert.match(error.message, /schema is newer than this release: migration 9999_dropped_by_newer_release/);
          assert.match(error.message, /Run the newer release, or restore the backup/);
          return true;
        });
        // Refused before anything was applied or changed.
        const count = await firstRow<{ n: number }>(t.database.db, sql`SELECT count(*)::int AS n FROM schema_migrations`);
        assert.equal(Number(count?.n), loadMigrations().length + 2);
      } finally {
        await t.dispose();
      }
    });
  });
}
