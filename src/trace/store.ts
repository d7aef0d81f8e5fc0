// Trace records in SQLite: a ring bounded by size. Records are queued in
// memory and written in batches (one transaction per batch, every 20 ms or
// every 256 records) from a timer, never from the code that answers the
// kernel. Past the size bound the oldest records are deleted; SQLite reuses
// their pages, so the file stays near the bound.
//
// The file is opened in WAL mode with synchronous=OFF: readers (trace
// summary/query) can read while the daemon writes, and a trace never costs
// an fsync. A crash may lose the last batch, never corrupt the file.
import Database from 'better-sqlite3';
import * as fs from 'fs';
import type { TraceRecord } from './record';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS records (
  id INTEGER PRIMARY KEY,
  ts REAL NOT NULL, op TEXT NOT NULL, path TEXT NOT NULL, path2 TEXT, flags INTEGER,
  errno INTEGER NOT NULL, dur_us INTEGER NOT NULL, pid INTEGER, uid INTEGER, gid INTEGER, comm TEXT,
  layer TEXT, decision TEXT, cache TEXT, copyup_bytes INTEGER, copyup_us INTEGER, marker TEXT
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

export const TRACE_COLUMNS =
  'ts, op, path, path2, flags, errno, dur_us AS durUs, pid, uid, gid, comm, layer, decision, cache, copyup_bytes AS copyupBytes, copyup_us AS copyupUs, marker';

// Small, frequent batches: records kept longer are promoted to V8's old
// generation before they are written, and the daemon runs with a small young
// generation and a tight heap (daemon.ts, main.ts), so long-lived batches
// meant more full collections.
const FLUSH_MS = 20;
const FLUSH_COUNT = 256;

export class TraceStore {
  private readonly db: Database.Database;
  private readonly insert: Database.Statement;
  private queue: TraceRecord[] = [];
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private readonly pageSize: number;
  /** Records written and dropped by the ring, for status. */
  written = 0;
  dropped = 0;

  constructor(
    readonly file: string,
    private readonly maxBytes: number,
    meta: Record<string, string>,
    private readonly onError: (msg: string) => void,
  ) {
    this.db = new Database(file);
    try {
      fs.chmodSync(file, 0o600);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = OFF');
      this.db.exec(SCHEMA);
      const m = this.db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)');
      for (const [k, v] of Object.entries(meta)) m.run(k, v);
      this.pageSize = this.db.pragma('page_size', { simple: true }) as number;
      this.insert = this.db.prepare(
        'INSERT INTO records (ts, op, path, path2, flags, errno, dur_us, pid, uid, gid, comm, layer, decision, cache, copyup_bytes, copyup_us, marker) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      );
    } catch (err) {
      this.db.close();
      throw err;
    }
  }

  add(r: TraceRecord): void {
    this.queue.push(r);
    if (this.queue.length >= FLUSH_COUNT) {
      this.immediate ??= setImmediate(() => this.flush());
    } else if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), FLUSH_MS);
      this.timer.unref();
    }
  }

  /** Writes what is queued, then trims the ring. */
  flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    try {
      this.db.transaction(() => {
        // Positional parameters: binding by name costs an object per record.
        const ins = this.insert;
        for (const r of batch) {
          ins.run(
            r.ts, r.op, r.path, r.path2 ?? null, r.flags ?? null, r.errno, Math.round(r.durUs), r.pid, r.uid, r.gid, r.comm,
            r.layer ?? null, r.decision ?? null, r.cache ?? null, r.copyupBytes ?? null, r.copyupUs ?? null, r.marker ?? null,
          );
        }
      })();
      this.written += batch.length;
      this.trim();
    } catch (err) {
      this.onError(`trace ${this.file}: ${(err as Error).message}; ${batch.length} record(s) lost`);
    }
  }

  private trim(): void {
    const pages = this.db.pragma('page_count', { simple: true }) as number;
    const free = this.db.pragma('freelist_count', { simple: true }) as number;
    if ((pages - free) * this.pageSize <= this.maxBytes) return;
    // A fifth of the records at a time: trims are rare, and the file keeps
    // its size while new records fill the freed pages.
    const { lo, n } = this.db.prepare('SELECT min(id) AS lo, count(*) AS n FROM records').get() as { lo: number; n: number };
    const cut = Math.max(1, Math.floor(n / 5));
    const info = this.db.prepare('DELETE FROM records WHERE id < ?').run(lo + cut);
    this.dropped += info.changes;
  }

  close(): void {
    this.flush();
    try {
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // a reader holds it: the WAL stays, readable
    }
    this.db.close();
  }
}

/** Opens a trace file for reading; a clear error if it is not one. */
export function openTraceFile(file: string): Database.Database {
  if (!fs.existsSync(file)) throw new Error(`${file}: no such trace file`);
  if (fs.statSync(file).isDirectory()) {
    throw new Error(`${file}: a directory, not a trace file ('layerfs status MOUNTPOINT' shows the file a mount traces to)`);
  }
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
    db.prepare('SELECT count(*) FROM records').get();
  } catch (err) {
    throw new Error(`${file}: not a layerfs trace (${(err as Error).message})`);
  }
  return db;
}
