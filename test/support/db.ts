import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openDatabase, type Database, type Engine } from '../../src/db/database.ts';
import { migrate, type Migration } from '../../src/db/migrate.ts';
import { ensureSystemAccounts } from '../../src/ledger/ledger.ts';

/**
 * Every database test runs on PGlite, and on PostgreSQL when TEST_DATABASE_URL is set. In CI a
 * missing TEST_DATABASE_URL is an error, so the PostgreSQL suite can never be skipped silently.
 */
export const testDatabaseUrl = process.env.TEST_DATABASE_URL || undefined;
if (process.env.CI === 'true' && !testDatabaseUrl) {
  throw new Error('CI=true but TEST_DATABASE_URL is not set: the PostgreSQL suite would be skipped');
}

export const engines: Engine[] = testDatabaseUrl ? ['pglite', 'postgres'] : ['pglite'];

export interface TestDatabase {
  database: Database;
  engine: Engine;
  /** The URL of this test's own PostgreSQL database (postgres engine only). */
  databaseUrl?: string;
  dispose(): Promise<void>;
}

function withDatabaseName(url: string, name: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${name}`;
  return parsed.toString();
}

export interface FreshDatabaseOptions {
  currency?: string;
  now?: Date;
  /** Only these migrations (an earlier schema, for upgrade tests); default all. */
  migrations?: Migration[];
  /** false: without the ledger's system accounts (a test writes its own rows); default true. */
  system?: boolean;
}

/** A fresh, migrated database: an in-memory PGlite, or a new database on the PostgreSQL server. */
export async function freshDatabase(engine: Engine, options: FreshDatabaseOptions = {}): Promise<TestDatabase> {
  const now = options.now ?? new Date('2026-01-01T00:00:00Z');
  const prepare = async (database: Database, databaseUrl?: string) => {
    await migrate(database, { databaseUrl, migrations: options.migrations });
    if (options.system !== false) await ensureSystemAccounts(database.db, options.currency ?? 'USD', now);
  };
  if (engine === 'pglite') {
    const database = await openDatabase({});
    await prepare(database);
    return { database, engine, dispose: () => database.close() };
  }
  if (!testDatabaseUrl) throw new Error('TEST_DATABASE_URL is not set');
  const name = `namaskah_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: testDatabaseUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const databaseUrl = withDatabaseName(testDatabaseUrl, name);
  const database = await openDatabase({ databaseUrl, poolSize: 20 });
  await prepare(database, databaseUrl);
  return {
    database,
    engine,
    databaseUrl,
    async dispose() {
      await database.close();
      const dropper = new pg.Client({ connectionString: testDatabaseUrl });
      await dropper.connect();
      await dropper.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await dropper.end();
    },
  };
}
