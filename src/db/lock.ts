import { closeSync, existsSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/**
 * PGlite does not guard its data directory against a second process, and two writers corrupt it.
 * The process that opens the directory holds this lock file. A lock is stale only when the pid in it
 * is no longer alive — never by age — and only then is it taken over.
 */
export interface LockInfo {
  pid: number;
  startedAt: string;
  /** Where the owning server listens, so other commands can reach it instead of the directory. */
  url?: string;
}

export class DataDirLockedError extends Error {
  constructor(
    readonly dataDir: string,
    readonly owner: LockInfo,
  ) {
    super(
      `data directory ${dataDir} is in use by process ${owner.pid}` +
        (owner.url ? ` (namaskah serving at ${owner.url})` : '') +
        '; stop that process or use another DATA_DIR',
    );
    this.name = 'DataDirLockedError';
  }
}

export function lockPath(dataDir: string): string {
  return join(dataDir, 'namaskah.lock');
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function readLock(dataDir: string): LockInfo | undefined {
  try {
    const info = JSON.parse(readFileSync(lockPath(dataDir), 'utf8')) as LockInfo;
    return Number.isInteger(info.pid) ? info : undefined;
  } catch {
    return undefined;
  }
}

export interface DataDirLock {
  readonly path: string;
  /** Record the server's address in the lock for other commands. */
  update(info: Partial<LockInfo>): void;
  release(): void;
}

export function acquireDataDirLock(dataDir: string, now: Date, pid = process.pid): DataDirLock {
  mkdirSync(dataDir, { recursive: true });
  const path = lockPath(dataDir);
  let info: LockInfo = { pid, startedAt: now.toISOString() };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, JSON.stringify(info));
      closeSync(fd);
      return {
        path,
        update(extra) {
          info = { ...info, ...extra };
          const fd2 = openSync(path, 'w', 0o600);
          writeSync(fd2, JSON.stringify(info));
          closeSync(fd2);
        },
        release() {
          const current = readLock(dataDir);
          if (current?.pid === pid && existsSync(path)) unlinkSync(path);
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = readLock(dataDir);
      if (owner && owner.pid !== pid && isAlive(owner.pid)) throw new DataDirLockedError(dataDir, owner);
      // Stale (dead pid, or unreadable half-written file from a crash): take it over.
      try {
        unlinkSync(path);
      } catch (unlinkError) {
        if ((unlinkError as NodeJS.ErrnoException).code !== 'ENOENT') throw unlinkError;
      }
    }
  }
  throw new Error(`could not acquire the lock on ${dataDir}`);
}
