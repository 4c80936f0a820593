/**
 * The SQLite peer of the "streams at scale" workloads (X1–X7): the same event store API, the
 * obvious way on better-sqlite3, so that each coldstream workload has SQLite beside it in the
 * same run.
 *
 * Setup: `journal_mode=WAL`, `synchronous=FULL` (every commit fsyncs the WAL: as durable as
 * coldstream's `'fsync'`), everything else SQLite's defaults (2 MiB page cache, automatic
 * checkpoints every 1,000 WAL pages). One table:
 *
 *   events(stream_id TEXT, revision INTEGER, position INTEGER PRIMARY KEY, event_id TEXT,
 *          type TEXT, data TEXT, metadata TEXT, timestamp INTEGER)
 *   UNIQUE INDEX (stream_id, revision)
 *
 * `position` is the rowid, assigned by SQLite (the last one + 1). An append is one transaction:
 * per stream, read the head revision through the index, check the expected revision, insert the
 * rows; prepared statements throughout. A read selects a stream's rows in revision order and
 * JSON-parses `data` and `metadata`, as coldstream's `readStream` does.
 *
 * better-sqlite3 is synchronous: an append or a read holds the event loop (including its
 * fsync), which a single-writer benchmark does not penalise.
 */
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import type { EventData, ExpectedRevision } from '../lib/index.js';

/** The subset of better-sqlite3 this peer uses (its types are not installed). */
interface Statement {
  run(...params: unknown[]): unknown;
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}

interface Database {
  pragma(source: string, options?: { simple?: boolean }): unknown;
  exec(sql: string): unknown;
  prepare(sql: string): Statement;
  transaction<Args extends unknown[]>(fn: (...args: Args) => void): (...args: Args) => void;
  close(): void;
}

const Sqlite = createRequire(import.meta.url)('better-sqlite3') as new (file: string) => Database;

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS events (
    stream_id TEXT NOT NULL,
    revision INTEGER NOT NULL,
    position INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    metadata TEXT,
    timestamp INTEGER NOT NULL
  );
  CREATE UNIQUE INDEX IF NOT EXISTS events_stream_revision ON events (stream_id, revision);
`;

export interface PeerAppend {
  readonly streamId: string;
  readonly events: readonly EventData[];
  readonly expectedRevision: ExpectedRevision;
}

/** A row as the peer returns it: the fields of coldstream's RecordedEvent. */
export interface PeerEvent {
  readonly streamId: string;
  readonly revision: number;
  readonly position: number;
  readonly id: string;
  readonly type: string;
  readonly data: unknown;
  readonly metadata: Record<string, unknown> | undefined;
  readonly timestamp: number;
}

interface Row {
  readonly stream_id: string;
  readonly revision: number;
  readonly position: number;
  readonly event_id: string;
  readonly type: string;
  readonly data: string;
  readonly metadata: string | null;
  readonly timestamp: number;
}

export interface SqlitePeerOptions {
  /** `'FULL'` (default) for every measured workload; `'OFF'` only to build a dataset that is not measured. */
  readonly synchronous?: 'FULL' | 'OFF';
}

export class SqlitePeer {
  private readonly headOf: Statement;
  private readonly insert: Statement;
  private readonly selectStream: Statement;
  private readonly appendInTransaction: (requests: readonly PeerAppend[]) => void;
  private readonly loadInTransaction: (appends: readonly PeerAppend[]) => void;

  private constructor(private readonly db: Database) {
    this.headOf = db.prepare('SELECT max(revision) AS revision FROM events WHERE stream_id = ?');
    this.insert = db.prepare('INSERT INTO events (stream_id, revision, event_id, type, data, metadata, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?)');
    this.selectStream = db.prepare('SELECT stream_id, revision, position, event_id, type, data, metadata, timestamp FROM events WHERE stream_id = ? ORDER BY revision');
    this.appendInTransaction = db.transaction((requests: readonly PeerAppend[]) => this.appendRows(requests));
    this.loadInTransaction = db.transaction((appends: readonly PeerAppend[]) => {
      for (const append of appends) this.appendRows([append]);
    });
  }

  /** Opens (creating when missing) the database file `file`, and prepares the statements. */
  static open(file: string, options: SqlitePeerOptions = {}): SqlitePeer {
    const db = new Sqlite(file);
    try {
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${options.synchronous ?? 'FULL'}`);
      db.exec(SCHEMA);
      return new SqlitePeer(db);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /** Appends to every stream of `requests` in one transaction; throws (nothing written) when an expected revision does not hold. */
  append(requests: readonly PeerAppend[]): void {
    this.appendInTransaction(requests);
  }

  /** Appends each of `appends` in turn, all in one transaction (building a dataset in bulk). */
  load(appends: readonly PeerAppend[]): void {
    this.loadInTransaction(appends);
  }

  /** The stream's events in revision order (empty for a stream without events). */
  readStream(streamId: string): PeerEvent[] {
    return (this.selectStream.all(streamId) as Row[]).map((row) => ({
      streamId: row.stream_id,
      revision: row.revision,
      position: row.position,
      id: row.event_id,
      type: row.type,
      data: JSON.parse(row.data),
      metadata: row.metadata === null ? undefined : (JSON.parse(row.metadata) as Record<string, unknown>),
      timestamp: row.timestamp,
    }));
  }

  /** The stream's last revision, or undefined when it has no events. */
  head(streamId: string): number | undefined {
    const { revision } = this.headOf.get(streamId) as { revision: number | null };
    return revision ?? undefined;
  }

  /** Closes the database (the last connection checkpoints the WAL into the database file). */
  close(): void {
    this.db.close();
  }

  private appendRows(requests: readonly PeerAppend[]): void {
    const timestamp = Date.now();
    for (const { streamId, events, expectedRevision } of requests) {
      const head = this.head(streamId);
      const ok = expectedRevision === 'any' || (expectedRevision === 'no_stream' ? head === undefined : expectedRevision === 'stream_exists' ? head !== undefined : head === expectedRevision);
      if (!ok) throw new Error(`SQLite peer: stream ${streamId} is at revision ${head ?? 'no_stream'}, expected ${expectedRevision}`);
      let revision = head === undefined ? 0 : head + 1;
      for (const event of events) {
        const metadata = event.metadata === undefined ? null : JSON.stringify(event.metadata);
        this.insert.run(streamId, revision++, event.id ?? randomUUID(), event.type, JSON.stringify(event.data), metadata, timestamp);
      }
    }
  }
}
