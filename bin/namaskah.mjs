#!/usr/bin/env node
// The `namaskah` command: runs the TypeScript sources through tsx (a runtime dependency).
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/entry.ts');
