import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { sql } from 'drizzle-orm';
import { loadConfig } from '../../src/config.ts';
import { rows } from '../../src/db/database.ts';
import { ProviderError } from '../../src/providers/provider.ts';
import { createVerificationRuntime } from '../../src/runtime.ts';
import { tripBreakerInAnotherProcess } from '../support/breaker-process.ts';
import { ManualClock } from '../support/clock.ts';
import { freshDatabase, testDatabaseUrl, type TestDatabase } from '../support/db.ts';
import { LIFECYCLE_TEST_ENV } from '../support/lifecycle.ts';
import { ScriptedProvider } from '../support/scripted-provider.ts';

/**
 * A breaker opened in one process is known to the others through the database (PostgreSQL), so a
 * dead upstream is not hammered by every process: another process opens `alpha`'s breaker; this
 * one then refuses `alpha` without calling it, while `beta` is untouched.
 */
describe('breakers shared between processes [postgres]', { skip: testDatabaseUrl ? false : 'needs TEST_DATABASE_URL' }, () => {
  let t: TestDatabase;
  before(async () => {
    t = await freshDatabase('postgres');
  });
  after(async () => {
    await t?.dispose();
  });

  test('opened in another process: refused here without an upstream call', async () => {
    const env = { BREAKER_FAILURE_THRESHOLD: '3', BREAKER_HALF_OPEN_AFTER_MS: '60000' };
    const config = loadConfig({ ...LIFECYCLE_TEST_ENV, ...env });
    const alpha = new ScriptedProvider('alpha');
    const beta = new ScriptedProvider('beta');
    const runtime = createVerificationRuntime(
      { config, database: t.database, clock: new ManualClock('2026-03-01T12:00:00Z'), logger: pino({ level: 'silent' }) },
      { providers: [alpha, beta], workerId: 'here' },
    );
    const breaker = runtime.providers.breaker('alpha');
    assert.equal(breaker.isOpen(), false);

    const report = await tripBreakerInAnotherProcess({ databaseUrl: t.databaseUrl!, name: 'alpha', env });
    assert.deepEqual(report, { opened: true, upstreamCalls: 3 });
    const [stored] = await rows<{ state: string }>(t.database.db, sql`SELECT state FROM provider_breakers WHERE provider = 'alpha'`);
    assert.equal(stored?.state, 'open');

    // This process reads the shared state at most about once a second, never in a call's way.
    for (let i = 0; i < 60 && !breaker.isOpen(); i++) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(breaker.isOpen(), true);
    assert.equal(breaker.state(), 'open');
    const ref = { providerOrderId: 'x', phoneNumber: '1555', since: new Date() };
    await assert.rejects(runtime.providers.get('alpha').check(ref), (error: unknown) => error instanceof ProviderError && error.kind === 'definite' && error.code === 'unavailable');
    assert.equal(alpha.calls.check, 0, 'the dead upstream was not called from here');
    assert.equal(runtime.providers.breaker('beta').isOpen(), false);
    await runtime.providers.get('beta').check(ref);
    assert.equal(beta.calls.check, 1);
    await runtime.engine.stop();
  });
});
