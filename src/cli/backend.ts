import { creditUserWallet } from '../accounts/admin.ts';
import { readOpsToken } from '../accounts/ops-token.ts';
import { adminUserResource, type AdminUserResource } from '../accounts/resource.ts';
import { createUser, findUserByEmail, listUsers, normalizeEmail, type Role } from '../accounts/users.ts';
import type { Clock } from '../clock.ts';
import type { Config } from '../config.ts';
import { decodeCursor } from '../db/keyset.ts';
import { DataDirLockedError } from '../db/lock.ts';
import { isDomainError } from '../errors.ts';
import { isLedgerError } from '../ledger/errors.ts';
import { listOutbox } from '../mail/mailer.ts';
import { walletOf } from '../ledger/ledger.ts';
import { walletResource, type WalletResource } from '../ledger/resource.ts';
import { embeddedDataDir, openConfiguredDatabase, prepareDatabase } from '../server.ts';
import { CommandFailure } from './errors.ts';

/**
 * What the `users` commands do, either directly on the database (PostgreSQL, or an embedded data
 * directory no one holds) or through a running embedded server's admin API, authenticated by the
 * local operator token it wrote into DATA_DIR (src/accounts/ops-token.ts).
 */
export interface AdminBackend {
  /** "the database" or "the server at …", for messages. */
  readonly via: string;
  createUser(input: { email: string; password: string; role: Role }): Promise<{ id: string; email: string; role: Role }>;
  listUsers(): Promise<AdminUserResource[]>;
  findUser(email: string): Promise<AdminUserResource | undefined>;
  credit(input: {
    userId: string;
    amountMinor: number;
    reason: string;
    idempotencyKey?: string;
  }): Promise<{ transferId: string; replayed: boolean; wallet: WalletResource }>;
  /** The local outbox (mail kept when no SMTP_URL is set), newest first. */
  outbox(options: { to?: string; limit: number }): Promise<OutboxMailResource[]>;
  close(): Promise<void>;
}

export interface OutboxMailResource {
  id: string;
  to: string;
  subject: string;
  body: string;
  created_at: string;
}

/** Domain refusals become command failures with the domain's own words. */
function asFailure(error: unknown): never {
  if (isDomainError(error) || isLedgerError(error)) throw new CommandFailure(error.message);
  throw error;
}

export async function openAdminBackend(config: Config, clock: Clock): Promise<AdminBackend> {
  let opened;
  try {
    opened = await openConfiguredDatabase(config, clock.now());
  } catch (error) {
    if (!(error instanceof DataDirLockedError)) throw error;
    const token = readOpsToken(embeddedDataDir(config));
    if (error.owner.url && token) return httpBackend(error.owner.url, token);
    throw new CommandFailure(
      `${error.message}` +
        (error.owner.url ? '' : '. If it is a namaskah server that is still starting, try again in a moment'),
    );
  }
  const { database } = opened;
  try {
    await prepareDatabase(database, config, clock.now());
  } catch (error) {
    await opened.close();
    throw error;
  }
  const page = async (cursor?: string) => listUsers(database.db, { after: cursor ? decodeCursor(cursor) : undefined, limit: 500 });
  return {
    via: 'the database',
    async createUser(input) {
      const user = await createUser(database, input, {
        currency: config.CURRENCY,
        now: clock.now(),
        audit: { actorId: null, actor: 'cli' },
      }).catch(asFailure);
      return { id: user.id, email: user.email, role: user.role };
    },
    async listUsers() {
      const all: AdminUserResource[] = [];
      let cursor: string | undefined;
      do {
        const result = await page(cursor);
        all.push(...result.items.map(adminUserResource));
        cursor = result.nextCursor ?? undefined;
      } while (cursor);
      return all;
    },
    async findUser(email) {
      const user = await findUserByEmail(database.db, email);
      if (!user) return undefined;
      const wallet = await walletOf(database.db, user.id);
      return adminUserResource({ ...user, balanceMinor: wallet.balanceMinor, heldMinor: wallet.heldMinor, availableMinor: wallet.availableMinor });
    },
    async credit(input) {
      const result = await creditUserWallet(database, { ...input, actor: { kind: 'operator' }, now: clock.now() }).catch(asFailure);
      return { transferId: result.transferId, replayed: result.replayed, wallet: walletResource(result.wallet) };
    },
    async outbox(options) {
      const page = await listOutbox(database.db, { recipient: options.to, limit: options.limit });
      return page.items.map((m) => ({ id: m.id, to: m.recipient, subject: m.subject, body: m.body, created_at: m.createdAt.toISOString() }));
    },
    close: () => opened.close(),
  };
}

function httpBackend(baseUrl: string, token: string): AdminBackend {
  async function request<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
    let response: Response;
    try {
      response = await fetch(new URL(path, baseUrl), {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...headers,
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new CommandFailure(
        `the data directory is held by a namaskah server at ${baseUrl}, but it does not answer (${(error as Error).message})`,
      );
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      throw new CommandFailure(`the server at ${baseUrl} answered ${response.status} with something that is not JSON`);
    }
    if (!response.ok) {
      const problem = (parsed ?? {}) as { detail?: string; code?: string };
      if (response.status === 401) {
        throw new CommandFailure(`the server at ${baseUrl} refused the local operator token (was it restarted? try again)`);
      }
      throw new CommandFailure(problem.detail ?? `the server answered ${response.status}`);
    }
    return { body: parsed as T, headers: response.headers };
  }

  async function* pages(query: string): AsyncGenerator<AdminUserResource[]> {
    let cursor: string | null = null;
    do {
      const params = new URLSearchParams({ limit: '200' });
      if (query) params.set('query', query);
      if (cursor) params.set('cursor', cursor);
      const { body } = await request<{ items: AdminUserResource[]; next_cursor: string | null }>('GET', `/v1/admin/users?${params}`);
      yield body.items;
      cursor = body.next_cursor;
    } while (cursor);
  }

  return {
    via: `the server at ${baseUrl}`,
    async createUser(input) {
      const { body } = await request<{ user: { id: string; email: string; role: Role } }>('POST', '/v1/admin/users', input);
      return body.user;
    },
    async listUsers() {
      const all: AdminUserResource[] = [];
      for await (const items of pages('')) all.push(...items);
      return all;
    },
    async findUser(email) {
      const wanted = normalizeEmail(email);
      for await (const items of pages(wanted)) {
        const found = items.find((u) => u.email === wanted);
        if (found) return found;
      }
      return undefined;
    },
    async credit(input) {
      const { body } = await request<{ transfer_id: string; replayed: boolean; wallet: WalletResource }>(
        'POST',
        `/v1/admin/users/${input.userId}/credit`,
        { amount_minor: input.amountMinor, reason: input.reason },
        input.idempotencyKey === undefined ? {} : { 'idempotency-key': input.idempotencyKey },
      );
      return { transferId: body.transfer_id, replayed: body.replayed, wallet: body.wallet };
    },
    async outbox(options) {
      const params = new URLSearchParams({ limit: String(options.limit) });
      if (options.to) params.set('to', options.to);
      const { body } = await request<{ items: OutboxMailResource[] }>('GET', `/v1/admin/mail?${params}`);
      return body.items;
    },
    async close() {},
  };
}
