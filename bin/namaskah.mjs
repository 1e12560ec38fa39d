#!/usr/bin/env node
// The `namaskah` command: runs the TypeScript sources through tsx (a runtime dependency).
import { setFlagsFromString } from 'node:v8';
import { register } from 'tsx/esm/api';

// A smaller young generation: at hundreds of purchases a second V8's default (16 MB semi-spaces)
// let the server's resident memory pass 300 MB between collections; 4 MB kept it under 290 MB at the
// same throughput (docs/performance.md, "Memory"). An operator's own setting wins.
const given = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].some((arg) => arg.includes('--max-semi-space-size'));
if (!given) setFlagsFromString('--max-semi-space-size=4');
register();
await import('../src/cli/entry.ts');
