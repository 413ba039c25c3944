import Database from 'better-sqlite3';

/** What is kept of one response: the response object, its own input items, and the items before them (from previous_response_id). */
export interface StoredResponse {
  response: Record<string, unknown>;
  input: Record<string, unknown>[];
  context: Record<string, unknown>[];
}

export interface ResponseStoreOptions {
  /** SQLite file, or ':memory:' (the default): a database that lives as long as the process. */
  path: string;
  /** Responses kept; the oldest go first. */
  maxCount: number;
  /** Seconds a response is kept. */
  maxAgeSeconds: number;
}

/**
 * The Responses API's stored responses (store: true), in SQLite. Bounded by
 * count and age: both are enforced on every write, and an expired response is
 * never returned. Nothing here logs what it stores.
 */
export class ResponseStore {
  private readonly db: Database.Database;
  private readonly insert: Database.Statement;
  private readonly select: Database.Statement;
  private readonly remove: Database.Statement;
  private readonly expire: Database.Statement;
  private readonly trim: Database.Statement;

  constructor(private readonly options: ResponseStoreOptions) {
    this.db = new Database(options.path);
    this.db.pragma('journal_mode = WAL');
    this.db.exec(`CREATE TABLE IF NOT EXISTS responses (
      id TEXT PRIMARY KEY,
      created_at INTEGER NOT NULL,
      response TEXT NOT NULL,
      input TEXT NOT NULL,
      context TEXT NOT NULL
    ); CREATE INDEX IF NOT EXISTS responses_created_at ON responses (created_at)`);
    this.insert = this.db.prepare('INSERT OR REPLACE INTO responses (id, created_at, response, input, context) VALUES (?, ?, ?, ?, ?)');
    this.select = this.db.prepare('SELECT created_at, response, input, context FROM responses WHERE id = ?');
    this.remove = this.db.prepare('DELETE FROM responses WHERE id = ?');
    this.expire = this.db.prepare('DELETE FROM responses WHERE created_at < ?');
    this.trim = this.db.prepare('DELETE FROM responses WHERE id IN (SELECT id FROM responses ORDER BY created_at DESC, rowid DESC LIMIT -1 OFFSET ?)');
  }

  /** createdAt: unix seconds (the response's created_at). */
  put(id: string, createdAt: number, stored: StoredResponse): void {
    this.db.transaction(() => {
      this.insert.run(id, createdAt, JSON.stringify(stored.response), JSON.stringify(stored.input), JSON.stringify(stored.context));
      this.expire.run(this.oldestKept());
      this.trim.run(this.options.maxCount);
    })();
  }

  /** The stored response, or null when it never was, was deleted, or has been evicted. */
  get(id: string): StoredResponse | null {
    const row = this.select.get(id) as { created_at: number; response: string; input: string; context: string } | undefined;
    if (!row) return null;
    if (row.created_at < this.oldestKept()) {
      this.remove.run(id);
      return null;
    }
    return { response: JSON.parse(row.response), input: JSON.parse(row.input), context: JSON.parse(row.context) };
  }

  /** False when there was nothing to delete. */
  delete(id: string): boolean {
    return this.remove.run(id).changes > 0;
  }

  get size(): number {
    return (this.db.prepare('SELECT count(*) AS n FROM responses').get() as { n: number }).n;
  }

  close(): void {
    this.db.close();
  }

  private oldestKept(): number {
    return Math.floor(Date.now() / 1000) - this.options.maxAgeSeconds;
  }
}
