import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import { firstRow, rows, withAdvisoryLock, type Database, type Executor } from './database.ts';

const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));
const MIGRATION_LOCK_KEY = 727_001;

/**
 * The rolling-upgrade rule (docs/operations.md, "Upgrades"): a migration only adds, so the previous
 * release keeps working against the new schema; what removes or changes something the previous
 * release uses (a dropped or renamed column, a changed type, a new NOT NULL without a default) waits
 * a release and says so with this marker line. test/db/migrations.test.ts checks that every such
 * statement carries it.
 */
export const BREAKS_PREVIOUS_RELEASE_MARKER = '-- rolling-upgrade: breaks-previous-release';

export interface Migration {
  version: string;
  script: string;
  /** Carries the marker: a release that does not know this migration cannot run against it. */
  breaksPreviousRelease: boolean;
}

export function loadMigrations(dir = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((name) => /^\d{4}_[a-z0-9_]+\.sql$/.test(name))
    .sort()
    .map((name) => {
      const script = readFileSync(`${dir}/${name}`, 'utf8');
      return {
        version: name.replace(/\.sql$/, ''),
        script,
        breaksPreviousRelease: script.split('\n').some((line) => line.trim() === BREAKS_PREVIOUS_RELEASE_MARKER),
      };
    });
}

export interface AppliedMigration {
  version: string;
  appliedAt: Date;
  /** As recorded by the release that applied it; null when recorded by a release older than this bookkeeping. */
  breaksPreviousRelease: boolean | null;
}

export interface MigrationStatus {
  /** Applied migrations this release knows, in order. */
  applied: AppliedMigration[];
  /** Migrations this release knows and the database has not had yet. */
  pending: string[];
  /** Applied by a newer release: this release does not know them. */
  newer: AppliedMigration[];
  /** A newer migration that this release cannot run against (it, or its recorder, did not promise to keep older releases working). */
  incompatible: AppliedMigration[];
}

/**
 * The database has migrations a newer release applied, and at least one of them removes or changes
 * something this release relies on. Starting anyway is how a column that the code needs goes
 * missing in production: refuse, and say what to do.
 */
export class SchemaNewerThanCodeError extends Error {
  constructor(readonly incompatible: AppliedMigration[]) {
    super(
      `the database schema is newer than this release: migration${incompatible.length === 1 ? '' : 's'} ` +
        `${incompatible.map((m) => m.version).join(', ')} (applied by a newer release) ` +
        'changed what this release relies on. Run the newer release, or restore the backup taken before the upgrade ' +
        '(docs/operations.md, "Rollback")',
    );
    this.name = 'SchemaNewerThanCodeError';
  }
}

async function readApplied(executor: Executor): Promise<AppliedMigration[] | undefined> {
  const table = await firstRow<{ present: boolean }>(executor, sql`SELECT to_regclass('schema_migrations') IS NOT NULL AS present`);
  if (!table?.present) return undefined;
  const column = await firstRow<{ present: boolean }>(
    executor,
    sql`SELECT EXISTS (SELECT 1 FROM information_schema.columns
                       WHERE table_schema = current_schema() AND table_name = 'schema_migrations'
                         AND column_name = 'breaks_previous_release') AS present`,
  );
  const found = await rows<{ version: string; applied_at: Date | string; breaks: boolean | null }>(
    executor,
    column?.present
      ? sql`SELECT version, applied_at, breaks_previous_release AS breaks FROM schema_migrations ORDER BY version`
      : sql`SELECT version, applied_at, NULL::boolean AS breaks FROM schema_migrations ORDER BY version`,
  );
  return found.map((r) => ({ version: r.version, appliedAt: new Date(r.applied_at), breaksPreviousRelease: r.breaks }));
}

/** What is applied, pending and newer than this release, without changing anything. */
export async function migrationStatus(database: Database, migrations = loadMigrations()): Promise<MigrationStatus> {
  const applied = (await readApplied(database.db)) ?? [];
  const known = new Set(migrations.map((m) => m.version));
  const done = new Set(applied.map((m) => m.version));
  const newer = applied.filter((m) => !known.has(m.version));
  return {
    applied: applied.filter((m) => known.has(m.version)),
    pending: migrations.filter((m) => !done.has(m.version)).map((m) => m.version),
    newer,
    // Unknown to this release and not recorded as additive: the safe reading is "breaks".
    incompatible: newer.filter((m) => m.breaksPreviousRelease !== false),
  };
}

/**
 * Applies the numbered SQL migrations not yet applied, each in its own transaction; refuses
 * (SchemaNewerThanCodeError) a database that a newer release changed incompatibly. On PostgreSQL
 * an advisory lock makes concurrent starts of many processes apply each migration once.
 * `migrations` is for tests that build an older schema.
 */
export async function migrate(
  database: Database,
  options: { databaseUrl?: string; migrations?: Migration[] } = {},
): Promise<string[]> {
  const migrations = options.migrations ?? loadMigrations();
  return withAdvisoryLock(options.databaseUrl, MIGRATION_LOCK_KEY, async () => {
    await database.db.execute(
      sql`CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    // Recorded with each migration, so an older release can tell whether it may run against it.
    await database.db.execute(sql`ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS breaks_previous_release boolean`);
    const status = await migrationStatus(database, migrations);
    if (status.incompatible.length > 0) throw new SchemaNewerThanCodeError(status.incompatible);
    const applied: string[] = [];
    for (const migration of migrations) {
      if (!status.pending.includes(migration.version)) continue;
      const record =
        `INSERT INTO schema_migrations (version, breaks_previous_release) ` +
        `VALUES ('${migration.version}', ${migration.breaksPreviousRelease});`;
      await database.runScript(`${migration.script}\n${record}`);
      applied.push(migration.version);
    }
    return applied;
  });
}
