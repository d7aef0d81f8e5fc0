// Reading a trace file: the summary (`layerfs trace summary`) and record
// selection (`layerfs trace query`). Plain SQL over the records table.
import type Database from 'better-sqlite3';
import { toSql, type TraceFilter } from './filter';
import { errnoName, type TraceRecord } from './record';
import { TRACE_COLUMNS } from './store';

export interface TraceSummary {
  file: string;
  meta: Record<string, string>;
  records: number;
  first?: number;
  last?: number;
  ops: { op: string; count: number; totalUs: number; meanUs: number }[];
  slowest: TraceRecord[];
  hottestPaths: { path: string; count: number; totalUs: number }[];
  byLayer: { layer: string; count: number }[];
  cache: { hits: number; misses: number };
  copyUps: { size: string; count: number; bytes: number; totalUs: number }[];
  errors: { errno: string; count: number; ops: string }[];
}

/** Copy-up size classes: up to 4 KiB, 64 KiB, 1 MiB, 16 MiB, more. */
const SIZE_CLASSES: [string, number][] = [
  ['<= 4 KiB', 4096],
  ['<= 64 KiB', 65536],
  ['<= 1 MiB', 1 << 20],
  ['<= 16 MiB', 16 << 20],
  ['> 16 MiB', Number.MAX_SAFE_INTEGER],
];

function clean(r: Record<string, unknown>): TraceRecord {
  for (const k of Object.keys(r)) if (r[k] === null) delete r[k];
  return r as unknown as TraceRecord;
}

export function summarize(db: Database.Database, file: string, top = 10): TraceSummary {
  const meta: Record<string, string> = {};
  for (const { key, value } of db.prepare('SELECT key, value FROM meta').all() as { key: string; value: string }[]) meta[key] = value;
  const span = db.prepare('SELECT count(*) AS n, min(ts) AS first, max(ts) AS last FROM records').get() as { n: number; first: number | null; last: number | null };
  const ops = (db.prepare('SELECT op, count(*) AS count, sum(dur_us) AS totalUs FROM records GROUP BY op ORDER BY count DESC').all() as { op: string; count: number; totalUs: number }[]).map((o) => ({
    ...o,
    meanUs: Math.round(o.totalUs / o.count),
  }));
  const slowest = (db.prepare(`SELECT ${TRACE_COLUMNS} FROM records ORDER BY dur_us DESC LIMIT ?`).all(top) as Record<string, unknown>[]).map(clean);
  const hottestPaths = db
    .prepare("SELECT path, count(*) AS count, sum(dur_us) AS totalUs FROM records WHERE path <> '' GROUP BY path ORDER BY count DESC LIMIT ?")
    .all(top) as { path: string; count: number; totalUs: number }[];
  const byLayer = db.prepare('SELECT layer, count(*) AS count FROM records WHERE layer IS NOT NULL GROUP BY layer ORDER BY count DESC').all() as { layer: string; count: number }[];
  const cache = db.prepare("SELECT sum(cache = 'hit') AS hits, sum(cache = 'miss') AS misses FROM records").get() as { hits: number | null; misses: number | null };
  const copyRows = db.prepare('SELECT copyup_bytes AS b, copyup_us AS us FROM records WHERE copyup_bytes IS NOT NULL').all() as { b: number; us: number }[];
  const copyUps = SIZE_CLASSES.map(([size]) => ({ size, count: 0, bytes: 0, totalUs: 0 }));
  for (const { b, us } of copyRows) {
    const c = copyUps[SIZE_CLASSES.findIndex(([, max]) => b <= max)];
    c.count++;
    c.bytes += b;
    c.totalUs += us ?? 0;
  }
  const errors = (db.prepare('SELECT errno, count(*) AS count, group_concat(DISTINCT op) AS ops FROM records WHERE errno <> 0 GROUP BY errno ORDER BY count DESC').all() as { errno: number; count: number; ops: string }[]).map((e) => ({
    errno: errnoName(e.errno),
    count: e.count,
    ops: e.ops,
  }));
  return {
    file,
    meta,
    records: span.n,
    ...(span.first !== null ? { first: span.first, last: span.last! } : {}),
    ops,
    slowest,
    hottestPaths,
    byLayer,
    cache: { hits: cache.hits ?? 0, misses: cache.misses ?? 0 },
    copyUps: copyUps.filter((c) => c.count > 0),
    errors,
  };
}

/** Records matching f, oldest first (the newest `limit` of them). */
export function query(db: Database.Database, f: TraceFilter, limit: number): TraceRecord[] {
  const { where, params } = toSql(f);
  const rows = db.prepare(`SELECT * FROM (SELECT id, ${TRACE_COLUMNS} FROM records ${where} ORDER BY id DESC LIMIT ?) ORDER BY id`).all(...params, limit) as Record<string, unknown>[];
  return rows.map((r) => {
    delete r.id;
    return clean(r);
  });
}
