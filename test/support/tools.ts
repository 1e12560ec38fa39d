import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/**
 * An outside checker a test runs (promtool, systemd-analyze). Outside CI a missing one skips the
 * test with one line saying how to install it; in CI (CI=true, where .ci/run installs them) it is
 * an error, so the check can never be skipped silently there.
 */
export function findTool(name: string, install: string): { path: string; why?: undefined } | { path?: undefined; why: string } {
  for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean)) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return { path: join(dir, name) };
    } catch {
      // not in this directory
    }
  }
  const why = `${name} not found on PATH: ${install}`;
  if (process.env.CI === 'true') throw new Error(`CI=true but ${why} (.ci/run installs it)`);
  return { why };
}
