import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { is, sql } from 'drizzle-orm';
import { getTableConfig, pgTable, PgTable, text, uuid } from 'drizzle-orm/pg-core';
import { rows } from '../../src/db/database.ts';
import { timestamptz } from '../../src/db/columns.ts';
import { engines, freshDatabase, type TestDatabase } from '../support/db.ts';

/**
 * Every table a module declares for Drizzle must be what the SQL migrations built — the same
 * columns, types, nullability, defaults and (for enum columns) the same allowed values — and every
 * relation the migrations build must be declared, unless it is deliberately SQL-only. So the
 * declarations and the migrations cannot drift apart, on either engine.
 */

/** Relations the code reaches only through SQL, never through Drizzle's query builder. */
const SQL_ONLY: Record<string, string> = {
  schema_migrations: 'the migration runner’s own bookkeeping (src/db/migrate.ts)',
  ledger_accounts: 'the ledger writes and reads its tables with visible SQL (src/ledger/ledger.ts)',
  ledger_holds: 'the ledger writes and reads its tables with visible SQL (src/ledger/ledger.ts)',
  ledger_transfers: 'the ledger writes and reads its tables with visible SQL (src/ledger/ledger.ts)',
  ledger_hold_resolutions: 'the ledger writes and reads its tables with visible SQL (src/ledger/ledger.ts)',
  ledger_hold_outcomes: 'a read view over the ledger, used by checks and reports through SQL',
};

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** Every pgTable exported by a module under src/ (found by the modules that call pgTable). */
async function declaredTables(): Promise<Map<string, { table: PgTable; module: string }>> {
  const found = new Map<string, { table: PgTable; module: string }>();
  for (const file of sourceFiles(SRC).filter((f) => readFileSync(f, 'utf8').includes('pgTable('))) {
    const module = relative(SRC, file);
    for (const value of Object.values(await import(pathToFileURL(file).href))) {
      if (!is(value, PgTable)) continue;
      const name = getTableConfig(value).name;
      const seen = found.get(name);
      assert.ok(!seen, `table ${name} is declared twice: src/${seen?.module} and src/${module}`);
      found.set(name, { table: value, module });
    }
  }
  return found;
}

interface ColumnFact {
  type: string;
  notNull: boolean;
  hasDefault: boolean;
  /** Allowed values, for a column restricted to a list by a CHECK (… IN (…)) constraint. */
  values?: string[];
}

type Relations = Map<string, Map<string, ColumnFact>>;

function declaredColumns(table: PgTable): Map<string, ColumnFact> {
  const out = new Map<string, ColumnFact>();
  for (const column of getTableConfig(table).columns) {
    const serial = column.getSQLType() === 'bigserial';
    const values = (column as { enumValues?: string[] }).enumValues;
    out.set(column.name, {
      type: serial ? 'bigint' : column.getSQLType(),
      notNull: column.notNull,
      hasDefault: column.hasDefault || serial,
      ...(values && values.length > 0 ? { values: [...values].sort() } : {}),
    });
  }
  return out;
}

/** The tables and views the migrations built, read from the catalogue of the live database. */
async function migratedRelations(t: TestDatabase): Promise<Relations> {
  const columns = await rows<{ relation: string; column: string; type: string; not_null: boolean; has_default: boolean }>(
    t.database.db,
    sql`SELECT c.relname AS relation, a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type,
               a.attnotnull AS not_null, a.atthasdef AS has_default
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v') AND a.attnum > 0 AND NOT a.attisdropped`,
  );
  const checks = await rows<{ relation: string; definition: string }>(
    t.database.db,
    sql`SELECT c.relname AS relation, pg_get_constraintdef(k.oid) AS definition
        FROM pg_constraint k
        JOIN pg_class c ON c.oid = k.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND k.contype = 'c'`,
  );
  const out: Relations = new Map();
  for (const c of columns) {
    const relation = out.get(c.relation) ?? new Map<string, ColumnFact>();
    out.set(c.relation, relation);
    relation.set(c.column, { type: c.type, notNull: c.not_null, hasDefault: c.has_default });
  }
  // PostgreSQL shows `col IN ('a', 'b')` as ((col = ANY (ARRAY['a'::text, 'b'::text]))).
  for (const check of checks) {
    const match = /^CHECK \(\((\w+) = ANY \(ARRAY\[(.*)\]\)\)\)$/.exec(check.definition);
    const column = match?.[1] && out.get(check.relation)?.get(match[1]);
    if (!match?.[2] || !column) continue;
    column.values = [...match[2].matchAll(/'((?:[^']|'')*)'::text/g)].map((m) => (m[1] ?? '').replace(/''/g, "'")).sort();
  }
  return out;
}

/** Every way the declarations and the database disagree, as readable lines (none: they agree). */
function differences(declared: Map<string, PgTable>, migrated: Relations, sqlOnly: Record<string, string>): string[] {
  const out: string[] = [];
  for (const [name, table] of declared) {
    const actual = migrated.get(name);
    if (!actual) {
      out.push(`${name}: declared, but no migration creates it`);
      continue;
    }
    const wanted = declaredColumns(table);
    for (const [column, fact] of wanted) {
      const real = actual.get(column);
      if (!real) {
        out.push(`${name}.${column}: declared, but not in the migrations`);
        continue;
      }
      if (fact.type !== real.type) out.push(`${name}.${column}: declared ${fact.type}, migrated ${real.type}`);
      if (fact.notNull !== real.notNull) out.push(`${name}.${column}: declared ${fact.notNull ? 'NOT NULL' : 'nullable'}, migrated the other way`);
      if (fact.hasDefault !== real.hasDefault) out.push(`${name}.${column}: declared ${fact.hasDefault ? 'with' : 'without'} a default, migrated the other way`);
      if (fact.values && JSON.stringify(fact.values) !== JSON.stringify(real.values ?? null)) {
        out.push(`${name}.${column}: declared values ${fact.values.join('|')}, the migrations allow ${real.values?.join('|') ?? 'anything'}`);
      }
    }
    for (const column of actual.keys()) if (!wanted.has(column)) out.push(`${name}.${column}: in the migrations, not declared`);
  }
  for (const name of migrated.keys()) {
    if (!declared.has(name) && !(name in sqlOnly)) out.push(`${name}: created by the migrations, neither declared nor listed as SQL-only`);
  }
  for (const name of Object.keys(sqlOnly)) {
    if (declared.has(name)) out.push(`${name}: listed as SQL-only but declared too`);
    if (!migrated.has(name)) out.push(`${name}: listed as SQL-only but the migrations do not create it`);
  }
  return out;
}

for (const engine of engines) {
  describe(`table declarations match the migrations [${engine}]`, () => {
    let t: TestDatabase;
    let migrated: Relations;
    let declared: Map<string, PgTable>;
    before(async () => {
      t = await freshDatabase(engine);
      migrated = await migratedRelations(t);
      declared = new Map([...(await declaredTables())].map(([name, d]) => [name, d.table]));
    });
    after(() => t.dispose());

    test('every declared table is exactly what the migrations built, and every migrated one is declared or SQL-only', () => {
      assert.ok(declared.size >= 8, `found ${declared.size} declared tables`);
      assert.deepEqual(differences(declared, migrated, SQL_ONLY), []);
    });

    test('a declaration that drifted from the migrations is reported, column by column', () => {
      // The same table as migrated, with one of each kind of drift.
      const drifted = pgTable('notifications', {
        id: uuid('id').primaryKey(),
        userId: uuid('user_id'),
        verificationId: text('verification_id'),
        kind: text('kind', { enum: ['code_received', 'refund_issued', 'promotion'] }).notNull(),
        title: text('title').notNull(),
        body: text('body').notNull(),
        createdAt: timestamptz('created_at').notNull(),
        archivedAt: timestamptz('archived_at'),
      });
      const found = differences(new Map([['notifications', drifted]]), migrated, { ...SQL_ONLY, ...Object.fromEntries([...declared.keys()].map((n) => [n, 'x'])) });
      assert.deepEqual(
        found.filter((line) => line.startsWith('notifications')).sort(),
        [
          'notifications.archived_at: declared, but not in the migrations',
          'notifications.id: declared without a default, migrated the other way',
          'notifications.kind: declared values code_received|promotion|refund_issued, the migrations allow account_security|code_received|low_balance|refund_issued|upstream_balance_low|webhook_endpoint_disabled',
          'notifications.read_at: in the migrations, not declared',
          'notifications.user_id: declared nullable, migrated the other way',
          'notifications.verification_id: declared text, migrated uuid',
          'notifications: listed as SQL-only but declared too',
        ].sort(),
      );
      const undeclared = differences(new Map(), migrated, {});
      assert.ok(undeclared.includes('verifications: created by the migrations, neither declared nor listed as SQL-only'), undeclared.join('\n'));
    });
  });
}
