import { sql } from 'drizzle-orm';
import { rows, type Database } from './database.ts';

/**
 * Vacuum and analyze for the embedded database. PostgreSQL's autovacuum runs in a background
 * process of its own, which the embedded database (one process, one connection) does not have: left
 * alone, every row a purchase updates stays behind as a dead version, indexes fill with them, the
 * planner never learns the tables' sizes, and no transaction id is ever frozen. The engine applies
 * autovacuum's own rules here instead (docs/operations.md, "The embedded database's upkeep").
 */

/** What the statistics say of one table since it was last vacuumed and analyzed. */
export interface TableActivity {
  table: string;
  /** The planner's row count (pg_class.reltuples); negative when never analyzed, taken as 0 (as autovacuum does). */
  rows: number;
  deadRows: number;
  insertedSinceVacuum: number;
  modifiedSinceAnalyze: number;
  /** Transactions since the table's oldest unfrozen row (age of relfrozenxid). */
  xidAge: number;
}

export interface Upkeep {
  table: string;
  vacuum: boolean;
  analyze: boolean;
  why: string;
}

/** PostgreSQL's autovacuum defaults (autovacuum_* settings of PostgreSQL 15). */
export const AUTOVACUUM_RULES = {
  vacuumThreshold: 50,
  vacuumScaleFactor: 0.2,
  insertThreshold: 1000,
  insertScaleFactor: 0.2,
  analyzeThreshold: 50,
  analyzeScaleFactor: 0.1,
  freezeMaxAge: 200_000_000,
} as const;

/** Which tables need a vacuum or an analyze now, by autovacuum's rules. */
export function upkeepDue(tables: readonly TableActivity[], rules = AUTOVACUUM_RULES): Upkeep[] {
  const due: Upkeep[] = [];
  for (const t of tables) {
    const size = Math.max(0, t.rows);
    const reasons: string[] = [];
    if (t.deadRows > rules.vacuumThreshold + rules.vacuumScaleFactor * size) reasons.push(`${t.deadRows} dead rows`);
    if (t.insertedSinceVacuum > rules.insertThreshold + rules.insertScaleFactor * size) reasons.push(`${t.insertedSinceVacuum} rows inserted`);
    if (t.xidAge > rules.freezeMaxAge) reasons.push(`transaction id age ${t.xidAge}`);
    const vacuum = reasons.length > 0;
    const analyze = t.modifiedSinceAnalyze > rules.analyzeThreshold + rules.analyzeScaleFactor * size;
    if (analyze) reasons.push(`${t.modifiedSinceAnalyze} rows changed since analyzed`);
    if (vacuum || analyze) due.push({ table: t.table, vacuum, analyze, why: reasons.join(', ') });
  }
  return due;
}

/** The statement for one table's upkeep (names come from the catalogue, quoted all the same). */
export function upkeepStatement(upkeep: Upkeep): string {
  const table = `"${upkeep.table.replaceAll('"', '""')}"`;
  if (upkeep.vacuum) return upkeep.analyze ? `VACUUM (ANALYZE) ${table}` : `VACUUM ${table}`;
  return `ANALYZE ${table}`;
}

export async function tableActivity(database: Database): Promise<TableActivity[]> {
  const found = await rows<{ table: string; rows: number; dead: number; inserted: number; modified: number; xid_age: number }>(
    database.db,
    sql`SELECT s.relname AS "table", c.reltuples::float8 AS rows, s.n_dead_tup::int8 AS dead,
               s.n_ins_since_vacuum::int8 AS inserted, s.n_mod_since_analyze::int8 AS modified,
               age(c.relfrozenxid)::int8 AS xid_age
        FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
        WHERE s.schemaname = 'public' ORDER BY s.relname`,
  );
  return found.map((r) => ({
    table: r.table,
    rows: Number(r.rows),
    deadRows: Number(r.dead),
    insertedSinceVacuum: Number(r.inserted),
    modifiedSinceAnalyze: Number(r.modified),
    xidAge: Number(r.xid_age),
  }));
}

/** Vacuums and analyzes the tables that need it now; returns what was done. */
export async function maintainTables(database: Database): Promise<Upkeep[]> {
  const due = upkeepDue(await tableActivity(database));
  for (const upkeep of due) await database.utility(upkeepStatement(upkeep));
  return due;
}
