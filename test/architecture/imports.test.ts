import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/**
 * The import graph of src/ (docs/architecture.md, "Floors"): no module imports itself through
 * others, and every import between units goes down, never sideways or up. A unit is a top-level
 * folder of src/ or a top-level file; units sit on floors:
 */
const FLOORS: readonly (readonly string[])[] = [
  // 0 and 1, the ground floor: infrastructure that knows no domain (context and logging are built
  // from the configuration, the clock and the database handle below them).
  ['clock', 'money', 'config', 'errors', 'db'],
  ['context', 'logging'],
  // 2, what needs nothing but the ground: upstream adapters, the live-event bus, outgoing mail and
  //    customers' outbound webhooks (whose outbox the ledger and the lifecycle write in their transactions).
  ['providers', 'events', 'outbound-webhooks', 'mail'],
  // 3, the ledger (which announces every wallet movement as a live event) and webhook replay protection.
  ['ledger', 'webhooks'],
  // 4, domain modules over those: accounts (open a wallet), the catalogue (the sandbox's offers),
  //    notifications (published as live events).
  ['accounts', 'catalogue', 'notifications'],
  // 5, the verification lifecycle.
  ['verifications'],
  // 6, the background engine that drives it, the SMS-Activate protocol served on top of it, and
  //    wallet top-ups through payment processors (which share the purchase's Idempotency-Key rules).
  ['engine', 'sms-activate-api', 'payments'],
  // 7, operations: diagnose, reconcile, metrics.
  ['ops'],
  // 8, the HTTP API.
  ['http'],
  // 9 and 10, the composition root: the runtime (provider, breaker, engine, live events) and the
  //    server that wires it with the database and the API.
  ['runtime'],
  ['server'],
  // 11, the command line, which starts the composition root.
  ['cli'],
];

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

type Graph = Map<string, Set<string>>;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** Module → the modules it imports (static, type-only, re-exports and dynamic import()), paths relative to src/. */
function importGraph(root: string): Graph {
  const graph: Graph = new Map();
  for (const file of sourceFiles(root)) {
    const from = relative(root, file);
    const targets = new Set<string>();
    for (const imported of ts.preProcessFile(readFileSync(file, 'utf8'), true, true).importedFiles) {
      if (imported.fileName.startsWith('.')) targets.add(relative(root, resolve(dirname(file), imported.fileName)));
    }
    graph.set(from, targets);
  }
  return graph;
}

function unitOf(module: string): string {
  return module.includes('/') ? module.slice(0, module.indexOf('/')) : module.replace(/\.ts$/, '');
}

/** Strongly connected components with more than one module, or a module importing itself (Tarjan). */
function cycles(graph: Graph): string[][] {
  let index = 0;
  const indices = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    indices.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!indices.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, indices.get(w)!));
      }
    }
    if (low.get(v) === indices.get(v)) {
      const component: string[] = [];
      let w: string | undefined;
      do {
        w = stack.pop();
        if (w === undefined) break;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || graph.get(v)?.has(v)) found.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!indices.has(v)) visit(v);
  return found;
}

/** Imports between units that do not go strictly down a floor, and units no floor names. */
function floorViolations(graph: Graph, floors: readonly (readonly string[])[]): string[] {
  const floorOf = new Map<string, number>();
  floors.forEach((units, floor) => units.forEach((unit) => floorOf.set(unit, floor)));
  const out: string[] = [];
  for (const [from, targets] of graph) {
    const fromUnit = unitOf(from);
    const fromFloor = floorOf.get(fromUnit);
    if (fromFloor === undefined) {
      out.push(`src/${from}: unit "${fromUnit}" is on no floor`);
      continue;
    }
    for (const to of targets) {
      const toUnit = unitOf(to);
      if (toUnit === fromUnit) continue;
      const toFloor = floorOf.get(toUnit);
      if (toFloor === undefined || toFloor >= fromFloor) {
        const where = toFloor === undefined ? 'no floor' : toFloor === fromFloor ? `the same floor (${toFloor})` : `floor ${toFloor}, above`;
        out.push(`src/${from} (floor ${fromFloor}) imports src/${to} on ${where}`);
      }
    }
  }
  return out.sort();
}

describe('the import graph of src/', () => {
  const graph = importGraph(SRC);

  test('every module is read, and relative imports resolve to modules of src/', () => {
    assert.ok(graph.size > 50, `read ${graph.size} modules`);
    const unresolved = [...graph].flatMap(([from, targets]) => [...targets].filter((to) => !graph.has(to)).map((to) => `${from} → ${to}`));
    assert.deepEqual(unresolved, []);
  });

  test('has no import cycle', () => {
    assert.deepEqual(cycles(graph), []);
  });

  test('every import between units goes down a floor: the ground floor imports no domain module', () => {
    assert.deepEqual(floorViolations(graph, FLOORS), []);
  });

  test('the checks see a cycle, a sideways import and an upward one (a graph made to break them)', () => {
    const broken: Graph = new Map([
      ['db/database.ts', new Set(['ledger/ledger.ts'])],
      ['ledger/ledger.ts', new Set(['db/database.ts', 'webhooks/deliveries.ts'])],
      ['webhooks/deliveries.ts', new Set<string>()],
      ['cli/a.ts', new Set(['cli/b.ts'])],
      ['cli/b.ts', new Set(['cli/a.ts'])],
      ['plugins/x.ts', new Set<string>()],
    ]);
    assert.deepEqual(cycles(broken), [['cli/a.ts', 'cli/b.ts'], ['db/database.ts', 'ledger/ledger.ts']].map((c) => c.sort()).reverse());
    assert.deepEqual(floorViolations(broken, FLOORS), [
      'src/db/database.ts (floor 0) imports src/ledger/ledger.ts on floor 3, above',
      'src/ledger/ledger.ts (floor 3) imports src/webhooks/deliveries.ts on the same floor (3)',
      'src/plugins/x.ts: unit "plugins" is on no floor',
    ]);
  });
});
