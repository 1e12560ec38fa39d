import { sql } from 'drizzle-orm';
import type { Database, Executor } from '../db/database.ts';

/**
 * Live updates for customers' open event streams. An event is published with pg_notify inside the
 * transaction that made the change, so it is delivered only if that change commits, and on
 * PostgreSQL it reaches every API process. Events carry ids only; subscribers load fresh state.
 */
export const EVENTS_CHANNEL = 'namaskah_events';

export type BusEventKind = 'verification' | 'notification' | 'wallet' | 'top_up';

export interface BusEvent {
  userId: string;
  kind: BusEventKind;
  id: string;
}

export async function publish(ex: Executor, event: BusEvent): Promise<void> {
  await ex.execute(sql`SELECT pg_notify(${EVENTS_CHANNEL}, ${JSON.stringify(event)})`);
}

/** Many events in one statement (a batch of transitions), each delivered as publish would. */
export async function publishMany(ex: Executor, events: readonly BusEvent[]): Promise<void> {
  if (events.length === 0) return;
  // One JSON parameter (not an array) so both drivers, pg and PGlite, pass it alike.
  const payloads = JSON.stringify(events.map((e) => JSON.stringify(e)));
  await ex.execute(sql`SELECT pg_notify(${EVENTS_CHANNEL}, e) FROM json_array_elements_text(${payloads}::json) AS e`);
}

/**
 * Events of changes already committed, published a moment later, many in one transaction. A commit
 * that notifies holds PostgreSQL's one notification-queue lock until its WAL is flushed, so a NOTIFY
 * in each purchase's own transaction queues every purchase behind every other; the purchase's events
 * go out here instead, one commit for a batch. Live events are hints (subscribers load fresh state),
 * so one lost in a crash between the commit and the batch costs a stream a refresh, nothing more.
 */
export function publishSoon(database: Database, event: BusEvent): void {
  let batch = pending.get(database);
  if (!batch) {
    batch = [];
    pending.set(database, batch);
    setTimeout(() => flush(database), SOON_MS).unref();
  }
  batch.push(event);
}

const SOON_MS = 5;
const pending = new Map<Database, BusEvent[]>();
const flushing = new Set<Promise<void>>();

function flush(database: Database): Promise<void> {
  const batch = pending.get(database) ?? [];
  pending.delete(database);
  // A database closed meanwhile (shutdown) has nobody left to tell.
  const sent = publishMany(database.db, batch).catch(() => undefined);
  flushing.add(sent);
  void sent.finally(() => flushing.delete(sent));
  return sent;
}

/** Publishes every event waiting for its batch now, and waits until all batches are out. */
export async function publishPending(): Promise<void> {
  await Promise.all([...pending.keys()].map(flush));
  await Promise.all([...flushing]);
}

type Listener = (event: BusEvent) => void;

/** Fans database notifications out to the in-process subscribers of each user. */
export class EventHub {
  private readonly listeners = new Map<string, Set<Listener>>();
  private unlisten?: () => Promise<void>;

  async start(database: Database): Promise<void> {
    this.unlisten = await database.listen(EVENTS_CHANNEL, (payload) => {
      let event: BusEvent;
      try {
        event = JSON.parse(payload) as BusEvent;
      } catch {
        return;
      }
      for (const listener of this.listeners.get(event.userId) ?? []) listener(event);
    });
  }

  subscribe(userId: string, listener: Listener): () => void {
    let set = this.listeners.get(userId);
    if (!set) this.listeners.set(userId, (set = new Set()));
    set.add(listener);
    return () => {
      set!.delete(listener);
      if (set!.size === 0) this.listeners.delete(userId);
    };
  }

  async stop(): Promise<void> {
    this.listeners.clear();
    await this.unlisten?.();
  }
}
