import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { readOpsToken } from '../accounts/ops-token.ts';
import { systemClock } from '../clock.ts';
import { loadConfig, type Config } from '../config.ts';
import { BackupRefused, restoreEmbeddedBackup } from '../db/backup.ts';
import { acquireDataDirLock, DataDirLockedError } from '../db/lock.ts';
import { migrationStatus } from '../db/migrate.ts';
import { scrubSecrets } from '../logging.ts';
import { CommandFailure, UsageError } from './errors.ts';
import type { CliIo } from './io.ts';

/**
 * `namaskah backup <file>` and `namaskah restore <file>` for the embedded database
 * (docs/operations.md, "Backup and restore"). PostgreSQL is backed up with its own tools
 * (pg_dump / pg_restore), which the commands point to.
 *
 * backup: through the running server when one holds DATA_DIR (GET /v1/admin/backup with the local
 * operator token: PGlite must not be opened by two processes), else by opening DATA_DIR itself.
 * The file is written beside its final name and renamed, so a file of that name is always whole;
 * an existing file is never overwritten.
 *
 * restore: into a DATA_DIR without a database, holding its lock (a server cannot start on it
 * meanwhile); then proves the restored data with diagnose.
 */

const POSTGRES_BACKUP =
  'this installation runs on PostgreSQL (DATABASE_URL): back it up with `pg_dump --format=custom` and restore with `pg_restore` (docs/operations.md, "Backup and restore")';

const line = (text: string) => `${text}\n`;

/**
 * Checks that fail by the passing of time alone: verifications that were waiting when the backup
 * was taken are past their deadline by the time it is restored. The engine releases them when the
 * server starts; they are no sign of a damaged backup.
 */
const CHECKS_OF_TIME = new Set(['no_hold_past_deadline', 'no_pending_stuck']);

async function fetchBackup(url: string, token: string): Promise<Uint8Array> {
  let response: Response;
  try {
    response = await fetch(new URL('/v1/admin/backup', url), { headers: { authorization: `Bearer ${token}` } });
  } catch (error) {
    throw new CommandFailure(`the running server at ${url} did not answer: ${scrubSecrets((error as Error).message)}`);
  }
  if (!response.ok) {
    const text = await response.text();
    let detail = text.slice(0, 300);
    try {
      detail = (JSON.parse(text) as { detail?: string }).detail ?? detail;
    } catch {
      // not JSON: keep the text
    }
    throw new CommandFailure(`the running server at ${url} answered ${response.status}: ${scrubSecrets(detail)}`);
  }
  return new Uint8Array(await response.arrayBuffer());
}

/** The data directory's backup, from the server that holds it or from the directory itself. */
async function takeBackup(config: Config, io: CliIo): Promise<{ archive: Uint8Array; via: string }> {
  const { embeddedDataDir, embeddedDatabasePath, openConfiguredDatabase } = await import('../server.ts');
  const dir = embeddedDataDir(config);
  if (!existsSync(join(embeddedDatabasePath(config), 'PG_VERSION'))) {
    throw new CommandFailure(`there is no embedded database in ${dir} (DATA_DIR) to back up`);
  }
  let opened;
  try {
    opened = await openConfiguredDatabase(config, (io.clock ?? systemClock).now());
  } catch (error) {
    if (!(error instanceof DataDirLockedError)) throw error;
    const token = readOpsToken(dir);
    if (!error.owner.url || !token) {
      throw new CommandFailure(
        `the data directory is in use by process ${error.owner.pid}, which does not answer over HTTP yet; retry when the server has started`,
      );
    }
    return { archive: await fetchBackup(error.owner.url, token), via: `the server at ${error.owner.url}` };
  }
  try {
    return { archive: await opened.database.dumpDataDir!(), via: dir };
  } finally {
    await opened.close();
  }
}

export function registerBackupCommands(program: Command, io: CliIo): void {
  const configOf = () => loadConfig(io.env);

  program
    .command('backup')
    .description('write a consistent snapshot of the embedded database to <file>, also while the server runs')
    .argument('<file>', 'where to write it (a new file: an existing one is never overwritten)')
    .action(async (file: string) => {
      const config = configOf();
      if (config.DATABASE_URL) throw new UsageError(POSTGRES_BACKUP);
      if (existsSync(file)) throw new UsageError(`${file} already exists; a backup never overwrites a file: choose a new name`);
      const { archive, via } = await takeBackup(config, io);
      const partial = `${file}.partial-${process.pid}`;
      try {
        writeFileSync(partial, archive, { flag: 'wx', mode: 0o600 });
        if (existsSync(file)) throw new CommandFailure(`${file} appeared while the backup was taken; it was left alone`);
        renameSync(partial, file);
      } finally {
        rmSync(partial, { force: true });
      }
      io.stdout(line(`backup of the embedded database written to ${file} (${archive.length} bytes, from ${via})`));
      io.stdout(line('it holds every password and key hash: keep it as safe as DATA_DIR itself'));
    });

  program
    .command('restore')
    .description('put a backup made by `namaskah backup` into an empty DATA_DIR (never over an existing database), then diagnose it')
    .argument('<file>', 'the backup file')
    .action(async (file: string) => {
      const config = configOf();
      if (config.DATABASE_URL) throw new UsageError(POSTGRES_BACKUP);
      let archive: Uint8Array;
      try {
        archive = readFileSync(file);
      } catch (error) {
        throw new CommandFailure(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
      }
      const { embeddedDataDir, embeddedDatabasePath, openConfiguredDatabase } = await import('../server.ts');
      const clock = io.clock ?? systemClock;
      const dir = embeddedDataDir(config);
      // Held while the files are written, so no server starts on a half-restored directory.
      const lock = acquireDataDirLock(dir, clock.now());
      try {
        await restoreEmbeddedBackup(embeddedDatabasePath(config), archive);
      } catch (error) {
        if (error instanceof BackupRefused) throw new CommandFailure(error.message);
        throw error;
      } finally {
        lock.release();
      }
      io.stdout(line(`restored ${file} into ${dir}`));

      const opened = await openConfiguredDatabase(config, clock.now());
      try {
        const status = await migrationStatus(opened.database);
        if (status.incompatible.length > 0 || status.newer.length > 0) {
          io.stdout(line(`the backup was made by a newer release (${status.newer.map((m) => m.version).join(', ')}); run that release on it`));
        }
        if (status.pending.length > 0) {
          io.stdout(
            line(
              `the backup was made by an earlier release: ${status.pending.length} migration(s) will be applied when the server starts ` +
                '(or run `namaskah migrate`); run `namaskah diagnose` after that',
            ),
          );
          return;
        }
        const { diagnose } = await import('../ops/diagnose.ts');
        const report = await diagnose({ database: opened.database, clock, config });
        const failing = report.checks.filter((c) => !c.ok);
        const failed = failing.filter((c) => !CHECKS_OF_TIME.has(c.name)).map((c) => c.name);
        if (failed.length > 0) throw new CommandFailure(`the restored database fails ${failed.length} invariant check(s): ${failed.join(', ')}`);
        const due = failing.filter((c) => CHECKS_OF_TIME.has(c.name));
        if (due.length === 0) {
          io.stdout(line(`diagnose: all ${report.checks.length} invariant checks pass`));
        } else {
          io.stdout(
            line(
              `diagnose: the money invariants pass; ${due.map((c) => `${c.name} (${c.count})`).join(', ')}: ` +
                'verifications passed their deadline since the backup was taken; the engine releases them when the server starts (run `namaskah diagnose` then)',
            ),
          );
        }
      } finally {
        await opened.close();
      }
    });
}
