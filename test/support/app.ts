import { cpSync, existsSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import type { DestinationStream, Logger } from 'pino';
import { CREDENTIAL_TABLES } from '../../src/accounts/schema.ts';
import type { Clock } from '../../src/clock.ts';
import { loadConfig, type Config } from '../../src/config.ts';
import type { AppContext } from '../../src/context.ts';
import { openDatabase, type Engine } from '../../src/db/database.ts';
import { loadMigrations, migrate } from '../../src/db/migrate.ts';
import { buildApp } from '../../src/http/app.ts';
import { createLogger } from '../../src/logging.ts';
import { embeddedDatabasePath, startServer, type RunningServer, type StartServerOptions } from '../../src/server.ts';
import { freshDatabase, type TestDatabase } from './db.ts';
import type { ApiResponse } from './http.ts';
import { AnswerConformance } from './openapi-conformance.ts';

export interface TestAppOptions {
  /** pglite (default): a fresh temp DATA_DIR; postgres: a fresh database on TEST_DATABASE_URL. */
  engine?: Engine;
  verificationTtlSeconds?: number;
  /** Overrides of the environment the server is configured from. */
  env?: Record<string, string>;
  clock?: Clock;
  worker?: boolean;
  /** Replaces the verification runtime (e.g. a scripted upstream). */
  runtime?: StartServerOptions['runtime'];
  /** Capture the server's log lines (they are silent otherwise, unless env.LOG_LEVEL says so). */
  logDestination?: DestinationStream;
  /** Replaces scrypt in the API (to count hashing work). */
  passwords?: StartServerOptions['passwords'];
  /**
   * Check every answer against /openapi.json (default on): a mismatch is printed at once and
   * close() fails with the list. Off only for a test that provokes answers outside the contract on purpose.
   */
  checkAnswers?: boolean;
}

export interface TestApp {
  url: string;
  ctx: AppContext;
  app: FastifyInstance;
  config: Config;
  server: RunningServer;
  admin: { email: string; password: string };
  /** The embedded data directory (pglite) or the database URL (postgres). */
  dataDir?: string;
  databaseUrl?: string;
  /** Answers that did not match /openapi.json so far (see TestAppOptions.checkAnswers). */
  answerMismatches: readonly string[];
  close(): Promise<void>;
}

let template: Promise<string> | undefined;

/**
 * A migrated, closed PGlite data directory shared by every test process (keyed by the migrations),
 * copied into each test app's DATA_DIR: a fresh PGlite spends seconds in initdb, a copy takes
 * milliseconds.
 */
function pgliteTemplate(): Promise<string> {
  template ??= (async () => {
    const digest = createHash('sha256');
    for (const m of loadMigrations()) digest.update(m.version).update(m.script);
    const dir = join(tmpdir(), `namaskah-pglite-template-${digest.digest('hex').slice(0, 16)}`);
    if (existsSync(join(dir, 'PG_VERSION'))) return dir;
    const build = mkdtempSync(join(tmpdir(), 'namaskah-pglite-build-'));
    try {
      const database = await openDatabase({ dataDir: join(build, 'pglite') });
      await migrate(database);
      await database.close();
      try {
        renameSync(join(build, 'pglite'), dir);
      } catch (error) {
        // Another test process won the race: use its template.
        if (!existsSync(join(dir, 'PG_VERSION'))) throw error;
      }
    } finally {
      rmSync(build, { recursive: true, force: true });
    }
    return dir;
  })();
  return template;
}

/** Puts an already migrated embedded database into DATA_DIR (as startServer would find it after a first run). */
export async function seedEmbeddedDatabase(dataDir: string): Promise<void> {
  cpSync(await pgliteTemplate(), embeddedDatabasePath({ DATA_DIR: dataDir }), { recursive: true });
}

/**
 * A real server on port 0 over a fresh database, with the sandbox provider and silent logs. Close
 * it in after(): it removes its temp directory or drops its database.
 */
export async function startTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const engine = options.engine ?? 'pglite';
  const admin = { email: 'admin@example.test', password: `root-${randomBytes(9).toString('base64url')}` };
  let dataDir: string | undefined;
  let testDatabase: TestDatabase | undefined;
  if (engine === 'pglite') {
    dataDir = mkdtempSync(join(tmpdir(), 'namaskah-test-'));
    await seedEmbeddedDatabase(dataDir);
  } else {
    testDatabase = await freshDatabase('postgres', { currency: options.env?.CURRENCY });
  }
  const env: Record<string, string> = {
    HOST: '127.0.0.1',
    PORT: '0',
    DATA_DIR: dataDir ?? join(tmpdir(), 'namaskah-unused'),
    PROVIDER: 'sandbox',
    SANDBOX_DELAY_MS: '200',
    SANDBOX_FAILURE_RATE: '0',
    ADMIN_EMAIL: admin.email,
    ADMIN_PASSWORD: admin.password,
    LOG_LEVEL: options.logDestination ? 'info' : 'silent',
    COOKIE_SECURE: 'false',
    // Tests log in, register and create keys from one address far more often than people do; the
    // rate-limit tests lower these again.
    LOGIN_ATTEMPTS_PER_MINUTE: '1000',
    LOGIN_ATTEMPTS_PER_ADDRESS_PER_MINUTE: '100000',
    REGISTRATIONS_PER_ADDRESS_PER_HOUR: '100000',
    API_KEYS_CREATED_PER_HOUR: '100000',
    API_KEYS_CREATED_PER_ADDRESS_PER_HOUR: '100000',
    POLL_INTERVAL_MS: '100',
    ENGINE_TICK_MS: '50',
    ...(options.verificationTtlSeconds ? { VERIFICATION_TTL_SECONDS: String(options.verificationTtlSeconds) } : {}),
    ...(testDatabase?.databaseUrl ? { DATABASE_URL: testDatabase.databaseUrl } : {}),
    ...options.env,
  };
  const config = loadConfig(env);
  const logger: Logger = createLogger(config, { destination: options.logDestination, credentialTables: CREDENTIAL_TABLES });
  const conformance = options.checkAnswers === false ? undefined : new AnswerConformance();
  let server: RunningServer;
  try {
    server = await startServer(config, {
      clock: options.clock,
      worker: options.worker,
      runtime: options.runtime,
      passwords: options.passwords,
      logger,
      print: () => {},
      extendApp: (app) => conformance?.install(app),
    });
  } catch (error) {
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    await testDatabase?.dispose();
    throw error;
  }
  let closed: Promise<void> | undefined;
  return {
    url: server.url,
    ctx: server.ctx,
    app: server.app,
    config,
    server,
    admin: { email: config.ADMIN_EMAIL ?? admin.email, password: config.ADMIN_PASSWORD ?? admin.password },
    dataDir,
    databaseUrl: testDatabase?.databaseUrl,
    answerMismatches: conformance?.mismatches ?? [],
    close: () =>
      (closed ??= (async () => {
        await server.close();
        if (dataDir) rmSync(dataDir, { recursive: true, force: true });
        await testDatabase?.dispose();
        const mismatches = conformance?.mismatches ?? [];
        if (mismatches.length > 0) {
          throw new Error(`${mismatches.length} answers did not match /openapi.json:\n  ${[...new Set(mismatches)].join('\n  ')}`);
        }
      })()),
  };
}

export interface InProcessApp {
  call(method: 'GET' | 'POST', url: string): Promise<ApiResponse>;
  close(): Promise<void>;
}

/**
 * The test server's application (same context, logger and runtime) with routes of a test's own,
 * answered in process: for failures no real route can be made to produce.
 */
export async function withTestRoutes(app: TestApp, routes: FastifyPluginAsync): Promise<InProcessApp> {
  const { runtime } = app.server;
  const extended = buildApp(app.ctx, { lifecycle: runtime.deps, hub: runtime.hub, staticDir: false });
  await extended.register(routes);
  return {
    async call(method, url) {
      const injected = await extended.inject({ method, url });
      const text = injected.body;
      let body: unknown = null;
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
      return { status: injected.statusCode, headers: new Headers(injected.headers as Record<string, string>), body, text };
    },
    close: () => extended.close(),
  };
}
