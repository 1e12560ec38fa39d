import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startTestApp, type TestApp } from '../support/app.ts';
import { findTool } from '../support/tools.ts';

/**
 * The shipped alerting rules and dashboard (deploy/prometheus, deploy/grafana) name only series the
 * server really exports, with the labels they group by; and the rules pass promtool's checks and
 * their unit tests (deploy/prometheus/alerts.test.yml).
 */

const DEPLOY = fileURLToPath(new URL('../../deploy/', import.meta.url));
const RULES = `${DEPLOY}prometheus/alerts.yml`;
const RULE_TESTS = `${DEPLOY}prometheus/alerts.test.yml`;
const DASHBOARD = `${DEPLOY}grafana/namaskah-dashboard.json`;
const METRICS_TOKEN = 'metrics-token-for-alert-tests-0123456789';

/** The series an expression names (Prometheus's own `up` aside), histogram suffixes folded to the family. */
function seriesIn(expressions: string[]): Map<string, string> {
  const found = new Map<string, string>();
  for (const expr of expressions) {
    for (const [name] of expr.matchAll(/\bnamaskah_[a-z0-9_]+/g)) found.set(name, expr);
  }
  return found;
}

function ruleExpressions(): string[] {
  // Every `expr:` of the rules file, one-line or block (`expr: |` followed by indented lines).
  const lines = readFileSync(RULES, 'utf8').split('\n');
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const match = /^(\s*)expr:\s*(.*)$/.exec(lines[i]!);
    if (!match) continue;
    if (match[2] !== '|') {
      out.push(match[2]!);
      continue;
    }
    const block: string[] = [];
    while (i + 1 < lines.length && (lines[i + 1]!.trim() === '' || lines[i + 1]!.search(/\S/) > match[1]!.length)) block.push(lines[++i]!);
    out.push(block.join('\n'));
  }
  return out;
}

function dashboardExpressions(): string[] {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: { targets: { expr: string }[] }[] };
  return dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
}

/** `by (…)` / `without (…)` label lists of an expression. */
function groupingLabels(expr: string): string[] {
  return [...expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)].flatMap((m) => m[1]!.split(',').map((l) => l.trim()).filter(Boolean));
}

describe('alerting rules and dashboard against the metrics the server exports', () => {
  let app: TestApp;
  let scrape: () => Promise<string>;

  before(async () => {
    app = await startTestApp({ worker: false, env: { METRICS_TOKEN } });
    scrape = async () => {
      const response = await fetch(new URL('/metrics', app.url), { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
      assert.equal(response.status, 200);
      return response.text();
    };
    // A purchase request (refused: no credential), so the purchase route's HTTP series exist.
    await fetch(new URL('/v1/verifications', app.url), { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
  });
  after(() => app?.close());

  test('every series in the rules and the dashboard is exported, with every label they group by', async () => {
    // The background samples (invariants, upstream balance) start with the first scrape; their
    // labelled values appear once each has run once.
    let text = await scrape();
    for (let attempt = 0; attempt < 100 && !(/namaskah_invariant_failing\{check=/.test(text) && /namaskah_upstream_balance_minor\{/.test(text)); attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      text = await scrape();
    }
    const families = new Map<string, string>();
    for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) families.set(name!, type!);
    const samples = text.split('\n').filter((l) => l && !l.startsWith('#'));

    const expressions = [...ruleExpressions(), ...dashboardExpressions()];
    assert.ok(ruleExpressions().length >= 12, 'every rule has its expression read');
    const missing: string[] = [];
    for (const [series, expr] of seriesIn(expressions)) {
      const family = series.replace(/_(bucket|sum|count)$/, '');
      const type = families.get(series) ?? families.get(family);
      if (!type) {
        missing.push(`${series} (in: ${expr.trim()})`);
        continue;
      }
      if (series !== family) assert.equal(families.get(family), 'histogram', `${series} is a histogram's series`);
      // The labels the expression groups by are labels of this series.
      const ofSeries = samples.filter((l) => l.startsWith(`${series}{`) || l.startsWith(`${series} `));
      assert.ok(ofSeries.length > 0, `${series} has samples`);
      const labels = new Set(ofSeries.flatMap((l) => [...(/\{([^}]*)\}/.exec(l)?.[1] ?? '').matchAll(/(\w+)="/g)].map((m) => m[1]!)));
      if (expr.match(new RegExp(`\\b${series}\\b`)) && /\b(by|without)\s*\(/.test(expr)) {
        for (const label of groupingLabels(expr)) {
          if (label === 'le' && series.endsWith('_bucket')) continue;
          assert.ok(labels.has(label), `${series} has the label ${label} (in: ${expr.trim()})`);
        }
      }
    }
    assert.deepEqual(missing, [], 'series the rules or the dashboard name but /metrics does not export');

    // The label values the rules select on are the ones the server writes.
    assert.ok(samples.some((l) => l.startsWith('namaskah_http_request_duration_seconds_bucket{') && l.includes('method="POST"') && l.includes('route="/v1/verifications"')));
    assert.ok(samples.some((l) => l.startsWith('namaskah_purchases_total{outcome="failed"}')));
    assert.ok(samples.some((l) => l.startsWith('namaskah_invariant_failing{check="journal_balanced"} 0')));
    assert.ok(samples.some((l) => l.startsWith('namaskah_upstream_balance_minor{provider="sandbox",currency="USD"}')));
    assert.ok(samples.some((l) => /^namaskah_invariants_checked_timestamp_seconds [1-9]/.test(l)));
  });

  test('promtool checks the rules and runs their unit tests', (t) => {
    const promtool = findTool('promtool', 'apt-get install prometheus (Debian: it contains promtool)');
    if (!promtool.path) return t.skip(promtool.why);
    execFileSync(promtool.path, ['check', 'rules', RULES], { stdio: 'pipe' });
    const tests = spawnSync(promtool.path, ['test', 'rules', RULE_TESTS], { encoding: 'utf8' });
    assert.equal(tests.status, 0, `${tests.stdout}\n${tests.stderr}`);
    assert.match(tests.stdout + tests.stderr, /SUCCESS/);
  });
});
