import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';

/** A file `restoreEmbeddedBackup` refuses, with the reason in words an operator can act on. */
export class BackupRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BackupRefused';
  }
}

const GZIP_MAGIC = [0x1f, 0x8b];

/**
 * Puts an embedded backup (Database.dumpDataDir's gzipped tar) into `pgliteDir`, which must not
 * exist or be empty: a restore never overwrites a database. PGlite unpacks the archive and starts
 * on it once, so a file that is not a data directory fails here rather than at the next start.
 */
export async function restoreEmbeddedBackup(pgliteDir: string, archive: Uint8Array): Promise<void> {
  if (existsSync(pgliteDir) && readdirSync(pgliteDir).length > 0) {
    throw new BackupRefused(`${pgliteDir} already holds a database; a restore never overwrites one (restore into an empty DATA_DIR, or move this one away first)`);
  }
  if (archive.length < 2 || archive[0] !== GZIP_MAGIC[0] || archive[1] !== GZIP_MAGIC[1]) {
    throw new BackupRefused('the file is not a namaskah embedded backup (a gzipped tar made by `namaskah backup`)');
  }
  let client: PGlite | undefined;
  try {
    client = new PGlite(pgliteDir, { loadDataDir: new Blob([new Uint8Array(archive)]) });
    await client.waitReady;
    await client.query('SELECT 1');
  } catch (error) {
    // Leave the directory as empty as it was found, so the next attempt is not refused.
    if (client && !client.closed) await client.close().catch(() => {});
    for (const name of existsSync(pgliteDir) ? readdirSync(pgliteDir) : []) rmSync(join(pgliteDir, name), { recursive: true, force: true });
    throw new BackupRefused(`the backup could not be loaded: ${(error as Error).message}`);
  } finally {
    if (client && !client.closed) await client.close().catch(() => {});
  }
}
