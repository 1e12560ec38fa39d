import { loadConfig } from '../../src/config.ts';
import { openDatabase } from '../../src/db/database.ts';
import { buildApp } from '../../src/http/app.ts';
import { createLogger } from '../../src/logging.ts';
import { createVerificationRuntime } from '../../src/runtime.ts';
import { systemClock } from '../../src/clock.ts';

/**
 * The OpenAPI document exactly as a server configured with the sandbox serves it at /openapi.json
 * (the sandbox adds POST /v1/sandbox/sms, which integrators rehearse with). Built from the route
 * schemas without listening and without touching data: the database is an empty in-memory one.
 */
export async function buildOpenApiDocument(): Promise<Record<string, unknown>> {
  const config = loadConfig({ PROVIDER: 'sandbox', LOG_LEVEL: 'silent', DATA_DIR: '/nonexistent' });
  const database = await openDatabase({});
  try {
    const ctx = { config, database, clock: systemClock, logger: createLogger(config) };
    const runtime = createVerificationRuntime(ctx);
    const app = buildApp(ctx, { lifecycle: runtime.deps, hub: runtime.hub, staticDir: false });
    await app.ready();
    const document = app.swagger() as unknown as Record<string, unknown>;
    await app.close();
    return document;
  } finally {
    await database.close();
  }
}
