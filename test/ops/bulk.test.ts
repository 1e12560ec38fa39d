import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { diagnose } from '../../src/ops/diagnose.ts';
import type { DiagnoseReport } from '../../src/ops/reports.ts';
import { reconcile } from '../../src/ops/reconcile.ts';
import { engines } from '../support/db.ts';
import { lifecycleHarness, type LifecycleHarness } from '../support/lifecycle.ts';
import { injectBulk, ListingProvider, snapshot } from './support.ts';

/**
 * Thousands of problems written at once with INSERT … SELECT generate_series: found by set-based
 * queries, listed without change by a dry run, each repaired once through the settlement code.
 * The timings are printed as test diagnostics (they are not asserted: the machine may be busy).
 */
function check(report: DiagnoseReport, name: string) {
  const found = report.checks.find((c) => c.name === name);
  assert.ok(found, `diagnose has a check named ${name}`);
  return found;
}

const diag = (h: LifecycleHarness) => diagnose({ database: h.t.database, clock: h.clock, config: h.config, breaker: h.runtime.breaker });

async function timed<T>(work: () => Promise<T>): Promise<[T, number]> {
  const started = process.hrtime.bigint();
  const result = await work();
  return [result, Number(process.hrtime.bigint() - started) / 1e6];
}

for (const engine of engines) {
  describe(`ops: thousands of problems at once [${engine}]`, () => {
    test('thousands of problems at once: set-based, repaired in one run, diagnose then ok', { timeout: 300_000 }, async (t) => {
      const h = await lifecycleHarness(engine, { provider: new ListingProvider() });
      try {
        const ex = h.t.database.db;
        // Each repair is a full settlement (a transaction of about ten statements): the embedded
        // engine, one connection, gets fewer rows so the file stays within its time budget.
        const counts = engine === 'postgres' ? { stuck: 3000, unresolved: 500, captured: 500 } : { stuck: 1000, unresolved: 500, captured: 500 };
        const total = counts.stuck + counts.unresolved + counts.captured;
        const [{ userId }, injectMs] = await timed(() => injectBulk(h, counts));
        const funds = total * 50 + 10_000;

        const [before, diagnoseMs] = await timed(() => diag(h));
        assert.equal(before.ok, false);
        assert.equal(check(before, 'no_hold_past_deadline').count, counts.stuck);
        assert.equal(check(before, 'terminal_holds_resolved').count, counts.unresolved);
        assert.equal(check(before, 'terminal_holds_resolved_correctly').count, counts.captured);
        assert.ok(before.checks.filter((c) => c.name !== 'no_hold_past_deadline' && !c.name.startsWith('terminal_')).every((c) => c.ok));

        const state0 = await snapshot(ex);
        const [dry, dryMs] = await timed(() => reconcile(h.deps, { days: 30, execute: false }));
        assert.deepEqual(await snapshot(ex), state0, 'a dry run changes nothing');
        assert.deepEqual(dry.summary, { hold_past_deadline: counts.stuck, terminal_hold_unresolved: counts.unresolved, wrongly_captured: counts.captured });

        const [run, executeMs] = await timed(() => reconcile(h.deps, { days: 30, execute: true }));
        assert.equal(run.found.length, total);
        assert.equal(run.repaired, total);
        assert.equal(run.remaining, 0);
        assert.deepEqual(await h.wallet(userId), [funds, 0, funds], 'every hold released, every wrong charge refunded, once');

        const [again, secondMs] = await timed(() => reconcile(h.deps, { days: 30, execute: true }));
        assert.deepEqual(again.found, []);

        const [after, diagnoseAfterMs] = await timed(() => diag(h));
        assert.equal(after.ok, true, JSON.stringify(after.checks.filter((c) => !c.ok)));
        assert.equal(after.states.expired, counts.stuck);
        t.diagnostic(
          `${engine}: inject ${injectMs.toFixed(0)} ms; diagnose ${diagnoseMs.toFixed(0)} ms; dry run ${dryMs.toFixed(0)} ms; ` +
            `execute ${total} repairs ${executeMs.toFixed(0)} ms; second run ${secondMs.toFixed(0)} ms; diagnose after ${diagnoseAfterMs.toFixed(0)} ms`,
        );
      } finally {
        await h.dispose();
      }
    });

  });
}
