import type { Database } from '../db/database.ts';
import { resolveToken, touchCredential, type Credential } from './credentials.ts';
import { hashToken } from './tokens.ts';

/**
 * A short in-process cache of resolved API keys and sessions, so an authenticated request needs no
 * database round trip of its own. It is safe only because every change that can end or alter a
 * credential (a revoked key or session, sign-out everywhere, a password reset, account closure, a
 * role or two-factor change) fires a database trigger (migrations/0018) that notifies
 * CREDENTIALS_CHANNEL when it commits; every process listening empties its cache on that signal,
 * which on PostgreSQL reaches every process within milliseconds. Without a working listener (not
 * started, or its connection lost) nothing is cached and every request is looked up, as before.
 * Only valid credentials are kept (a new key works at once), each at most `ttlMs`, and a session no
 * longer than its own expiry.
 */
export const CREDENTIALS_CHANNEL = 'namaskah_credentials';

interface Entry {
  credential: Credential;
  cachedAt: number;
}

export interface CredentialCacheOptions {
  /** How long an entry may serve without a lookup (the bound if a signal were somehow missed). */
  ttlMs?: number;
  /** Entries kept at most; the oldest go first. */
  maxEntries?: number;
}

export class CredentialCache {
  private readonly entries = new Map<string, Entry>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  /** Bumped by every signal: a lookup that began before one is not stored. */
  private generation = 0;
  private listening = false;
  private unlisten?: () => Promise<void>;

  constructor(
    private readonly database: Database,
    options: CredentialCacheOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? 10_000;
    this.maxEntries = options.maxEntries ?? 10_000;
  }

  async start(): Promise<void> {
    this.unlisten = await this.database.listen(
      CREDENTIALS_CHANNEL,
      () => this.invalidate(),
      () => {
        // The listener's connection is gone: signals could be missed, so stop caching.
        this.listening = false;
        this.invalidate();
      },
    );
    this.listening = true;
  }

  async stop(): Promise<void> {
    this.listening = false;
    this.invalidate();
    await this.unlisten?.();
  }

  /** Forgets every entry (a credential somewhere changed). */
  invalidate(): void {
    this.generation++;
    this.entries.clear();
  }

  /** resolveToken, answered from the cache when it may be. */
  async resolve(token: string, now: Date): Promise<Credential | undefined> {
    const db = this.database.db;
    if (!this.listening) return resolveToken(db, token, now);
    const hash = hashToken(token);
    const hit = this.entries.get(hash);
    if (hit && now.getTime() - hit.cachedAt < this.ttlMs && (hit.credential.expiresAt === undefined || hit.credential.expiresAt > now)) {
      await touchCredential(db, hit.credential, now);
      return hit.credential;
    }
    if (hit) this.entries.delete(hash);
    const generation = this.generation;
    const found = await resolveToken(db, token, now);
    if (found && generation === this.generation && this.listening) {
      if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
      this.entries.set(hash, { credential: found, cachedAt: now.getTime() });
    }
    return found;
  }
}
