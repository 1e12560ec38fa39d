import { chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { newToken, OPS_TOKEN_PREFIX } from './tokens.ts';

/**
 * In embedded mode only the server may open the data directory, so the CLI's admin commands
 * (`users …`) reach a running server over HTTP instead. To authenticate them, the server writes a
 * fresh random token into DATA_DIR/ops-token (mode 0600) when it starts and deletes it when it
 * stops; the server accepts it as an admin bearer token. Whoever can read that file can read the
 * database files beside it anyway, so it grants nothing new.
 */
export function opsTokenPath(dataDir: string): string {
  return join(dataDir, 'ops-token');
}

export function newOpsToken(): string {
  return newToken(OPS_TOKEN_PREFIX);
}

export function writeOpsToken(dataDir: string, token: string): void {
  const path = opsTokenPath(dataDir);
  writeFileSync(path, `${token}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
}

export function readOpsToken(dataDir: string): string | undefined {
  try {
    const token = readFileSync(opsTokenPath(dataDir), 'utf8').trim();
    return token.startsWith(OPS_TOKEN_PREFIX) ? token : undefined;
  } catch {
    return undefined;
  }
}

export function removeOpsToken(dataDir: string, token: string): void {
  // Only our own token: a newer server on the same directory may have replaced it.
  if (readOpsToken(dataDir) === token) rmSync(opsTokenPath(dataDir), { force: true });
}
