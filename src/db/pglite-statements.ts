import { parse, protocol, type PGlite, type QueryOptions, type Results, type Transaction } from '@electric-sql/pglite';

type BackendMessage = Awaited<ReturnType<PGlite['execProtocol']>>['messages'][number];

interface Described {
  /** The protocol-level prepared statement's name in the embedded backend. */
  name: string;
  /** Parameter type OIDs: the values are serialized by PGlite's serializer for each. */
  paramTypes: number[];
  /** The statement's RowDescription; undefined when it returns no rows. */
  rowDescription: BackendMessage | undefined;
}

/** Statements kept described and prepared at once; the least recently used is closed beyond it. */
const DEFAULT_STATEMENT_LIMIT = 256;

/** PostgreSQL's "cached plan must not change result type", after a statement's tables changed. */
const FEATURE_NOT_SUPPORTED = '0A000';

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/**
 * Queries on the embedded database as named prepared statements, each in one call into PGlite.
 * PGlite's own query() makes six calls into the database (parse, describe, bind, describe, execute,
 * sync) and parses the SQL and the row description again every time: with the database on the
 * server's one thread that was a third of the embedded server's CPU per purchase
 * (docs/performance.md, "The embedded default: one call per statement"). Here a statement is parsed and described once per process; then
 * bind, execute and sync go in one message, and the cached row description turns the rows into
 * results with PGlite's own parsers, as query() does. Errors are PGlite's DatabaseError, as from
 * query().
 */
export class PgliteStatements {
  readonly #client: PGlite;
  /** By SQL text, least recently used first. */
  readonly #statements = new Map<string, Described>();
  /** Names of statements dropped from the map, closed with the next message. */
  #closing: string[] = [];
  #counter = 0;
  readonly #limit: number;

  constructor(client: PGlite, options: { limit?: number } = {}) {
    this.#client = client;
    this.#limit = options.limit ?? DEFAULT_STATEMENT_LIMIT;
  }

  /** A query outside any transaction: waits, like PGlite's query(), for an open transaction to end. */
  async query<T>(text: string, params: readonly unknown[] = [], options?: QueryOptions): Promise<Results<T>> {
    await this.#client._checkReady();
    return this.#client._runExclusiveTransaction(async () => {
      try {
        return await this.#run<T>(text, params, options, false);
      } catch (error) {
        // A statement whose tables changed under it is described afresh, once.
        if ((error as { code?: unknown }).code !== FEATURE_NOT_SUPPORTED || !this.#statements.has(text)) throw error;
        this.#forget(text);
        return this.#run<T>(text, params, options, false);
      }
    });
  }

  /** PGlite's transaction(), its queries going the same way. */
  transaction<T>(fn: (tx: Transaction) => Promise<T>): Promise<T> {
    return this.#client.transaction((tx) => {
      const fast: Transaction = Object.create(tx);
      fast.query = <R>(text: string, params?: unknown[], options?: QueryOptions) => {
        if (tx.closed) throw new Error('Transaction is closed');
        return this.#run<R>(text, params ?? [], options, true);
      };
      return fn(fast);
    });
  }

  /** After a script changed the schema: every statement is described again on its next use. */
  forgetAll(): void {
    for (const text of [...this.#statements.keys()]) this.#forget(text);
  }

  #forget(text: string): void {
    const statement = this.#statements.get(text);
    if (!statement) return;
    this.#statements.delete(text);
    this.#closing.push(statement.name);
  }

  /** Under PGlite's query mutex; the caller holds its transaction mutex or is inside a transaction. */
  #run<T>(text: string, params: readonly unknown[], options: QueryOptions | undefined, inTransaction: boolean): Promise<Results<T>> {
    return this.#client._runExclusiveQuery(async () => {
      const statement = await this.#prepared(text);
      const values = params.map((value, index) => {
        if (value === null || value === undefined) return null;
        const type = statement.paramTypes[index]!;
        const serializer = options?.serializers?.[type] ?? this.#client.serializers[type];
        return serializer ? serializer(value) : String(value);
      });
      const closes = this.#closing.map((name) => protocol.serialize.close({ type: 'S', name }));
      this.#closing = [];
      const message = concat([...closes, protocol.serialize.bind({ statement: statement.name, values }), protocol.serialize.execute({}), protocol.serialize.sync()]);
      let messages: BackendMessage[];
      try {
        ({ messages } = await this.#client.execProtocol(message, { syncToFs: false }));
      } catch (error) {
        throw Object.assign(error as object, { query: text, params, queryOptions: options });
      }
      if (!inTransaction) await this.#client.syncToFs();
      const described = statement.rowDescription ? [statement.rowDescription, ...messages] : messages;
      return parse.parseResults(described, this.#client.parsers, options)[0] as Results<T>;
    });
  }

  async #prepared(text: string): Promise<Described> {
    const known = this.#statements.get(text);
    if (known) {
      // Most recently used last, so the first entry is the one to close when the map is full.
      this.#statements.delete(text);
      this.#statements.set(text, known);
      return known;
    }
    const name = `namaskah_${++this.#counter}`;
    const message = concat([protocol.serialize.parse({ name, text }), protocol.serialize.describe({ type: 'S', name }), protocol.serialize.sync()]);
    let messages: BackendMessage[];
    try {
      ({ messages } = await this.#client.execProtocol(message, { syncToFs: false }));
    } catch (error) {
      throw Object.assign(error as object, { query: text });
    }
    const statement: Described = {
      name,
      paramTypes: parse.parseDescribeStatementResults(messages),
      rowDescription: messages.find((m) => m.name === 'rowDescription'),
    };
    this.#statements.set(text, statement);
    if (this.#statements.size > this.#limit) this.#forget(this.#statements.keys().next().value!);
    return statement;
  }
}
