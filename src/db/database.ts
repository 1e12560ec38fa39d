import { PGlite } from '@electric-sql/pglite';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import type { PgDatabase, PgQueryResultHKT, PgTransaction } from 'drizzle-orm/pg-core';
import type { ExtractTablesWithRelations, SQL } from 'drizzle-orm';
import pg from 'pg';
import { PgliteStatements } from './pglite-statements.ts';

// No schema is registered with Drizzle: the code uses its query builder over the tables each module
// declares (and SQL), never the relational query API, so this floor knows no domain table.
type NoSchema = Record<string, never>;
export type Db = PgDatabase<PgQueryResultHKT, NoSchema>;
export type Tx = PgTransaction<PgQueryResultHKT, NoSchema, ExtractTablesWithRelations<NoSchema>>;
/** The root handle or a transaction handle. Inside a transaction, always pass the transaction. */
export type Executor = Db | Tx;

export type Engine = 'pglite' | 'postgres';

export interface Database {
  readonly engine: Engine;
  readonly db: Db;
  /** Runs fn in one transaction; retried on deadlock/serialization failure (fn must be pure I/O-free). */
  transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T>;
  /**
   * Subscribe to a NOTIFY channel; returns the unsubscribe function. `onLost` is called if the
   * subscription's connection ends on its own (notifications may then have been missed).
   */
  listen(channel: string, onPayload: (payload: string) => void, onLost?: () => void): Promise<() => Promise<void>>;
  /** Runs a multi-statement SQL script in one transaction (migrations). */
  runScript(script: string): Promise<void>;
  /**
   * One hot-path statement, on its own (autocommit), as a prepared statement where the driver keeps
   * them (PostgreSQL: named, prepared once per connection). Raw rows: snake_case columns, int8 as
   * numbers, timestamptz as Dates on both drivers. For the few statements whose cost per request
   * matters (docs/performance.md); everything else goes through drizzle.
   */
  prepared<T>(statement: PreparedStatement, values: readonly unknown[]): Promise<T[]>;
  /** One statement that may not run inside a transaction (VACUUM): src/db/maintenance.ts. */
  utility(statement: string): Promise<void>;
  /**
   * Embedded only: the whole data directory as a gzipped tar, taken between transactions (none is
   * open while it is written), so it holds every committed transaction and nothing else. Restored
   * by restoreEmbeddedBackup (src/db/backup.ts).
   */
  dumpDataDir?(): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** A statement run often: its SQL text and a name unique to that text (the prepared statement's name on PostgreSQL). */
export interface PreparedStatement {
  name: string;
  text: string;
}

export interface DatabaseOptions {
  /** postgres://… ; when set, PGlite is not used. */
  databaseUrl?: string;
  /** PGlite data directory; undefined = in memory. */
  dataDir?: string;
  poolSize?: number;
}

/** Rows of a raw SQL statement, the same shape on both drivers. */
export async function rows<T>(executor: Executor, query: SQL): Promise<T[]> {
  const result = (await executor.execute(query)) as unknown as { rows: T[] };
  return result.rows;
}

export async function firstRow<T>(executor: Executor, query: SQL): Promise<T | undefined> {
  return (await rows<T>(executor, query))[0];
}

const RETRYABLE = new Set(['40P01', '40001']);

export function pgErrorCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

export function pgConstraint(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current; depth++) {
    const c = (current as { constraint?: unknown }).constraint;
    if (typeof c === 'string') return c;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** int8 values are money and counts: parse them to numbers, refusing any that would lose precision. */
function parseInt8(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new RangeError(`int8 value out of safe range: ${value}`);
  return n;
}

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  return options.databaseUrl ? openPostgres(options.databaseUrl, options.poolSize ?? 10) : openPglite(options.dataDir);
}

/**
 * The embedded database's buffer pool. PGlite's default (PostgreSQL's 128 MB) lives inside the
 * WebAssembly heap, which never shrinks, on top of the operating system's cache of the same files;
 * 16 MB buys as fast as 32 MB, also with 100,000 verifications waiting, with about 20 MB less
 * resident memory (docs/performance.md, "Memory").
 */
const EMBEDDED_SHARED_BUFFERS = '16MB';

async function openPglite(dataDir: string | undefined): Promise<Database> {
  const options = { startParams: [...PGlite.defaultStartParams, '-c', `shared_buffers=${EMBEDDED_SHARED_BUFFERS}`] };
  const client = dataDir ? new PGlite(dataDir, options) : new PGlite(options);
  await client.waitReady;
  const statements = new PgliteStatements(client);
  // Drizzle needs only query() and transaction() of its client.
  const db = drizzlePglite({ client: { query: statements.query.bind(statements), transaction: statements.transaction.bind(statements) } as unknown as PGlite }) as unknown as Db;
  return {
    engine: 'pglite',
    db,
    transaction: (fn) => db.transaction(fn as never) as Promise<never>,
    async listen(channel, onPayload) {
      const unsubscribe = await client.listen(channel, onPayload);
      return async () => {
        if (!client.closed) await unsubscribe();
      };
    },
    async prepared<T>(statement: PreparedStatement, values: readonly unknown[]) {
      return (await statements.query<T>(statement.text, values)).rows;
    },
    async utility(statement) {
      // Queued behind PGlite's transaction mutex like any query: an open transaction ends first.
      await client.exec(statement);
    },
    async runScript(script) {
      await client.transaction(async (tx) => {
        await tx.exec(script);
      });
      statements.forgetAll();
    },
    async dumpDataDir() {
      // The checkpoint writes every committed change into the data files, so a restore starts
      // with little write-ahead log to replay. The dump runs under PGlite's transaction mutex: it
      // waits for an open transaction to end and keeps new ones out until the archive is written.
      await client.exec('CHECKPOINT');
      return client._runExclusiveTransaction(async () => {
        const archive = await client.dumpDataDir('gzip');
        return new Uint8Array(await archive.arrayBuffer());
      });
    },
    async close() {
      if (!client.closed) await client.close();
    },
  };
}

async function openPostgres(url: string, poolSize: number): Promise<Database> {
  const types = {
    getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
      oid === 20 ? parseInt8 : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
  };
  const pool = new pg.Pool({ connectionString: url, max: poolSize, types });
  // An idle client losing its connection must not crash the process.
  pool.on('error', () => {});
  const db = drizzlePg({ client: pool }) as unknown as Db;
  const listeners = new Set<pg.Client>();
  return {
    engine: 'postgres',
    db,
    async transaction(fn) {
      for (let attempt = 1; ; attempt++) {
        try {
          return await db.transaction(fn as never);
        } catch (error) {
          const code = pgErrorCode(error);
          if (!code || !RETRYABLE.has(code) || attempt >= 5) throw error;
        }
      }
    },
    async listen(channel, onPayload, onLost) {
      const client = new pg.Client({ connectionString: url, types });
      let lost = false;
      const lose = () => {
        if (lost || !listeners.has(client)) return;
        lost = true;
        onLost?.();
      };
      client.on('error', lose);
      client.on('end', lose);
      await client.connect();
      listeners.add(client);
      client.on('notification', (message) => {
        if (message.channel === channel && message.payload !== undefined) onPayload(message.payload);
      });
      await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      return async () => {
        listeners.delete(client);
        // A listener that fails to close has lost its connection already: nothing is left to undo.
        await client.end().catch(() => {});
      };
    },
    async prepared<T>(statement: PreparedStatement, values: readonly unknown[]) {
      const result = await pool.query({ name: statement.name, text: statement.text, values: values as unknown[] });
      return result.rows as T[];
    },
    async utility(statement) {
      await pool.query(statement);
    },
    async runScript(script) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        await client.query(script);
        await client.query('COMMIT');
      } catch (error) {
        // The script's own error is the one to report; a failed ROLLBACK ends with the connection.
        await client.query('ROLLBACK').catch(() => {});
        throw error;
      } finally {
        client.release();
      }
    },
    async close() {
      for (const client of listeners) await client.end().catch(() => {});
      listeners.clear();
      await pool.end();
    },
  };
}

/** Session-level advisory lock on PostgreSQL (held on one dedicated connection); a no-op on PGlite. */
export async function withAdvisoryLock<T>(databaseUrl: string | undefined, key: number, fn: () => Promise<T>): Promise<T> {
  if (!databaseUrl) return fn();
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [key]);
    return await fn();
  } finally {
    // An advisory lock dies with its session, so ending the connection releases it even when the
    // unlock itself fails; neither failure may hide the outcome of fn.
    await client.query('SELECT pg_advisory_unlock($1)', [key]).catch(() => {});
    await client.end().catch(() => {});
  }
}
