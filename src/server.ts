import { resolve, join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { ensureFirstAdmin } from './accounts/admin.ts';
import { newOpsToken, removeOpsToken, writeOpsToken } from './accounts/ops-token.ts';
import type { PasswordHasher } from './accounts/passwords.ts';
import { CREDENTIAL_TABLES } from './accounts/schema.ts';
import { hashToken } from './accounts/tokens.ts';
import { systemClock, type Clock } from './clock.ts';
import { redactUrl, type Config } from './config.ts';
import type { AppContext } from './context.ts';
import { openDatabase, type Database } from './db/database.ts';
import { acquireDataDirLock, DataDirLockedError, readLock, type DataDirLock } from './db/lock.ts';
import { migrate, migrationStatus } from './db/migrate.ts';
import { buildApp, type HealthCheck } from './http/app.ts';
import { createMetricsRegistry } from './http/metrics.ts';
import { ensureSystemAccounts } from './ledger/ledger.ts';
import { createLogger } from './logging.ts';
import { createMailer } from './mail/mailer.ts';
import { seedSandboxCatalogue } from './catalogue/catalogue.ts';
import { breakerHealth, engineHealth, registerDomainMetrics } from './ops/metrics.ts';
import { createVerificationRuntime, type VerificationRuntime } from './runtime.ts';
import { clearLeftoverLeases } from './engine/queue.ts';
import { configuredProviders } from './providers/settings.ts';

/** The embedded database's files live in DATA_DIR/pglite; the lock and ops token beside them. */
export function embeddedDataDir(config: Pick<Config, 'DATA_DIR'>): string {
  return resolve(config.DATA_DIR);
}

export function embeddedDatabasePath(config: Pick<Config, 'DATA_DIR'>): string {
  return join(embeddedDataDir(config), 'pglite');
}

// lock.ts treats a lock held by our own pid as stale (it cannot tell a crashed earlier run of this
// pid from this run), so a second open of one directory inside this process is refused here.
const openedHere = new Set<string>();

export interface OpenedDatabase {
  database: Database;
  /** The embedded data-dir lock, when this process holds it. */
  lock?: DataDirLock;
  close(): Promise<void>;
}

/**
 * Opens the configured database: PostgreSQL when DATABASE_URL is set, otherwise PGlite in DATA_DIR
 * after taking the data-dir lock (DataDirLockedError when a live process holds it). For every
 * command that needs the database: the server, the CLI, the ops tools.
 */
export async function openConfiguredDatabase(config: Config, now: Date): Promise<OpenedDatabase> {
  if (config.DATABASE_URL) {
    const database = await openDatabase({ databaseUrl: config.DATABASE_URL, poolSize: config.DATABASE_POOL_SIZE });
    return { database, close: () => database.close() };
  }
  const dir = embeddedDataDir(config);
  if (openedHere.has(dir)) throw new DataDirLockedError(dir, readLock(dir) ?? { pid: process.pid, startedAt: now.toISOString() });
  const lock = acquireDataDirLock(dir, now);
  openedHere.add(dir);
  const release = () => {
    openedHere.delete(dir);
    lock.release();
  };
  let database: Database;
  try {
    database = await openDatabase({ dataDir: embeddedDatabasePath(config) });
  } catch (error) {
    release();
    throw error;
  }
  let closed = false;
  return {
    database,
    lock,
    async close() {
      if (closed) return;
      closed = true;
      try {
        await database.close();
      } finally {
        release();
      }
    },
  };
}

/** Applies pending migrations, creates the system accounts and the sandbox catalogue; returns the migrations applied. */
export async function prepareDatabase(database: Database, config: Config, now: Date): Promise<string[]> {
  const applied = await migrate(database, { databaseUrl: config.DATABASE_URL });
  await ensureSystemAccounts(database.db, config.CURRENCY, now);
  if (configuredProviders(config).includes('sandbox')) await seedSandboxCatalogue(database.db);
  return applied;
}

/**
 * The embedded database is this process's alone (the data-dir lock): leases a killed predecessor
 * left are cleared at start, so its rows are worked on at once rather than after their leases.
 */
async function takeOverEmbeddedLeases(opened: OpenedDatabase, logger: Logger): Promise<void> {
  if (!opened.lock) return;
  const cleared = await clearLeftoverLeases(opened.database.db);
  if (cleared > 0) logger.info({ rows: cleared }, 'leases left by a previous embedded engine cleared');
}

/**
 * A newer release added to the schema (a rolling upgrade in progress, or a rollback): this release
 * still runs, because every such migration only adds (docs/operations.md, "Upgrades").
 */
async function warnWhenSchemaIsAhead(database: Database, logger: Logger): Promise<void> {
  const { newer } = await migrationStatus(database);
  if (newer.length > 0) {
    logger.warn({ migrations: newer.map((m) => m.version) }, 'the database has additive migrations from a newer release; running as the older release');
  }
}

export interface StartServerOptions {
  clock?: Clock;
  /** false: API only (`serve --no-worker`); the engine is not started. */
  worker?: boolean;
  logger?: Logger;
  /** Where the first admin's generated password is shown once (default: stdout). */
  print?: (text: string) => void;
  /** Replaces the configured provider (tests: a scripted upstream). */
  runtime?: (ctx: AppContext) => VerificationRuntime;
  /** Replaces scrypt for the HTTP API (tests count the hashing work an attack causes). */
  passwords?: PasswordHasher;
  /** Called with the HTTP application before it listens (tests add a hook that checks every answer against /openapi.json). */
  extendApp?: (app: FastifyInstance) => void;
}

export interface RunningServer {
  /** Where this server answers, reachable from this machine. */
  url: string;
  ctx: AppContext;
  app: FastifyInstance;
  metrics: Registry;
  runtime: VerificationRuntime;
  /** Stops background work, the HTTP server and the database, and releases the data-dir lock. Idempotent. */
  close(): Promise<void>;
}

function localUrl(config: Config, app: FastifyInstance): string {
  const { port } = app.server.address() as AddressInfo;
  const wildcard = ['0.0.0.0', '::', ''].includes(config.HOST);
  const host = wildcard ? '127.0.0.1' : config.HOST;
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** The composition root: everything a running Namaskah needs, wired once. */
export async function startServer(config: Config, options: StartServerOptions = {}): Promise<RunningServer> {
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger(config, { credentialTables: CREDENTIAL_TABLES });
  const print = options.print ?? ((text: string) => void process.stdout.write(`${text}\n`));
  const cleanups: (() => Promise<void>)[] = [];
  const runCleanups = async () => {
    for (const cleanup of cleanups.splice(0).reverse()) {
      try {
        await cleanup();
      } catch (error) {
        logger.error({ err: error }, 'error while shutting down');
      }
    }
  };

  try {
    const opened = await openConfiguredDatabase(config, clock.now());
    cleanups.push(() => opened.close());
    const { database } = opened;
    logger.info(
      config.DATABASE_URL
        ? { engine: 'postgres', database: redactUrl(config.DATABASE_URL) }
        : { engine: 'pglite', dataDir: embeddedDataDir(config) },
      'database opened',
    );
    const applied = await prepareDatabase(database, config, clock.now());
    if (applied.length > 0) logger.info({ migrations: applied }, 'migrations applied');
    await takeOverEmbeddedLeases(opened, logger);
    await warnWhenSchemaIsAhead(database, logger);

    const ctx: AppContext = { config, database, clock, logger };
    const { adminId } = await ensureFirstAdmin(database, {
      email: config.ADMIN_EMAIL,
      password: config.ADMIN_PASSWORD,
      currency: config.CURRENCY,
      now: clock.now(),
      logger,
      print,
      databaseUrl: config.DATABASE_URL,
    });

    const runtime = options.runtime ? options.runtime(ctx) : createVerificationRuntime(ctx);
    // Every API instance listens, so live events reach customers whichever process made the change.
    await runtime.hub.start(database);
    cleanups.push(() => runtime.hub.stop());
    // The kill switch: every API process keeps the operator's provider modes fresh (within a second).
    await runtime.controls.start();
    cleanups.push(() => runtime.controls.stop());

    const metrics = createMetricsRegistry();
    // Every provider's breaker and balance, a drained provider's too once it has been built.
    const members = () => runtime.providers.all();
    registerDomainMetrics(metrics, {
      database,
      clock,
      config,
      get breakers() {
        return members().map((m) => m.breaker);
      },
      get upstreams() {
        return members().map((m) => m.upstream);
      },
    });
    // GET /health: engine lag with its workers, and each provider's breaker (besides the database).
    const healthChecks: Record<string, HealthCheck> = {
      engine: () => engineHealth(ctx),
      breakers: async () => breakerHealth(members().map((m) => m.breaker)),
    };
    const mailer = createMailer(config, ctx);
    cleanups.push(() => mailer.close());
    const opsToken = config.DATABASE_URL ? undefined : newOpsToken();
    const app = buildApp(ctx, {
      mailer,
      lifecycle: runtime.deps,
      hub: runtime.hub,
      passwords: options.passwords,
      metrics,
      healthChecks,
      upstreams: members().map((m) => ({ provider: m.upstream, breaker: m.breaker })),
      ops: opsToken ? { tokenHash: hashToken(opsToken), userId: adminId } : undefined,
    });
    cleanups.push(() => app.close());
    options.extendApp?.(app);
    await app.listen({ host: config.HOST, port: config.PORT });
    const url = localUrl(config, app);

    if (opened.lock && opsToken) {
      const dir = embeddedDataDir(config);
      writeOpsToken(dir, opsToken);
      cleanups.push(async () => removeOpsToken(dir, opsToken));
      opened.lock.update({ url });
    }

    if (options.worker !== false) {
      runtime.engine.start();
      cleanups.push(() => runtime.engine.stop());
    }
    logger.info({ url, worker: options.worker !== false }, 'namaskah listening');

    let closing: Promise<void> | undefined;
    return {
      url,
      ctx,
      app,
      metrics,
      runtime,
      close: () => (closing ??= runCleanups()),
    };
  } catch (error) {
    await runCleanups();
    throw error;
  }
}

export interface RunningWorker {
  runtime: VerificationRuntime;
  close(): Promise<void>;
}

/**
 * `namaskah worker`: the background engine alone, no HTTP. Meant for PostgreSQL, where any number
 * of workers and API processes share the database; on the embedded database it takes the data-dir
 * lock like the server does (so it cannot run beside `serve`).
 */
export async function startWorker(config: Config, options: { clock?: Clock; logger?: Logger } = {}): Promise<RunningWorker> {
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger(config, { credentialTables: CREDENTIAL_TABLES });
  const opened = await openConfiguredDatabase(config, clock.now());
  try {
    await prepareDatabase(opened.database, config, clock.now());
    await takeOverEmbeddedLeases(opened, logger);
    await warnWhenSchemaIsAhead(opened.database, logger);
    const ctx: AppContext = { config, database: opened.database, clock, logger };
    const runtime = createVerificationRuntime(ctx);
    // The worker starts no purchases today, but whatever it runs with the lifecycle sees the same modes.
    await runtime.controls.start();
    runtime.engine.start();
    logger.info({ worker: runtime.engine.workerId }, 'namaskah worker started');
    let closing: Promise<void> | undefined;
    return {
      runtime,
      close: () =>
        (closing ??= (async () => {
          await runtime.engine.stop();
          await runtime.controls.stop();
          await opened.close();
        })()),
    };
  } catch (error) {
    await opened.close();
    throw error;
  }
}
