import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import { rows, withAdvisoryLock, type Database } from './database.ts';

const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));
const MIGRATION_LOCK_KEY = 727_001;

export interface Migration {
  version: string;
  script: string;
}

export function loadMigrations(dir = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((name) => /^\d{4}_[a-z0-9_]+\.sql$/.test(name))
    .sort()
    .map((name) => ({ version: name.replace(/\.sql$/, ''), script: readFileSync(`${dir}/${name}`, 'utf8') }));
}

/**
 * Applies the numbered SQL migrations not yet applied, each in its own transaction. On PostgreSQL
 * an advisory lock makes concurrent starts of many processes apply each migration once.
 */
export async function migrate(database: Database, options: { databaseUrl?: string } = {}): Promise<string[]> {
  return withAdvisoryLock(options.databaseUrl, MIGRATION_LOCK_KEY, async () => {
    await database.db.execute(
      sql`CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const done = new Set(
      (await rows<{ version: string }>(database.db, sql`SELECT version FROM schema_migrations`)).map((r) => r.version),
    );
    const applied: string[] = [];
    for (const migration of loadMigrations()) {
      if (done.has(migration.version)) continue;
      const record = `INSERT INTO schema_migrations (version) VALUES ('${migration.version}');`;
      await database.runScript(`${migration.script}\n${record}`);
      applied.push(migration.version);
    }
    return applied;
  });
}
