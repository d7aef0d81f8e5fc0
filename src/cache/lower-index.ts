// The persistent lower index: every directory entry of one lower layer, with
// its stat, symlink target and xattrs, in an SQLite file (better-sqlite3), so
// that a later mount resolves lookups and lists directories of that layer
// without touching its filesystem.
//
// Identity: one file per layer, named after the layer's real path and its
// root's (st_dev, st_ino). Freshness: the overlay contract says a lower layer
// does not change while in use; Nix's contract for a lower store adds that it
// may grow, by new names in its root. So opening an index compares the
// root's mtime and ctime with what was indexed; when they differ the root is
// listed again (one readdir): names that appeared are indexed (growth),
// a name that disappeared means the layer changed, and the index is refused
// (the mount then reads the layer directly and says so; `layerfs index build`
// rebuilds it). Changes deeper in a lower layer are outside both contracts
// and are not detected at mount (that takes a full walk): `layerfs index
// check` (cache/index-check.ts) does that walk and names every difference.
//
// Queries are prepared statements on the one JS thread: each is a B-tree
// lookup of microseconds. Building runs in `layerfs index build` (its own
// process) and writes in batched transactions.
import Database from 'better-sqlite3';
import { createHash } from 'crypto';
import { lstatSync, readdirSync, readlinkSync, realpathSync, renameSync, rmSync } from 'fs';
import * as path from 'path';
import { mkdirs } from '../mkdirs';
import { native } from '../native';
import { fsError } from '../core/errors';
import type { DirEntry } from '../core/layer';
import { S_IFDIR, S_IFLNK, S_IFMT, type Stat } from '../core/stat';
import { statFromNode } from '../layers/host';

const FORMAT = '1';

/** Where indexes live by default: root's system cache, or the user's. */
export function defaultIndexDir(): string {
  if (process.geteuid?.() === 0) return '/var/cache/layerfs';
  const xdg = process.env.XDG_CACHE_HOME;
  return path.join(xdg !== undefined && xdg !== '' ? xdg : path.join(process.env.HOME ?? '/tmp', '.cache'), 'layerfs');
}

export interface RootId {
  real: string;
  dev: bigint;
  ino: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

export function rootId(layerRoot: string): RootId {
  const real = realpathSync(layerRoot);
  const st = lstatSync(real, { bigint: true });
  if (!st.isDirectory()) throw fsError('ENOTDIR', 'index', real);
  return { real, dev: st.dev, ino: st.ino, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs };
}

/** The index file for a layer: keyed by its real path and its root's identity (rootId). */
export function indexFile(dir: string, id: RootId): string {
  const key = createHash('sha256').update(`${id.real}\0${id.dev}\0${id.ino}`).digest('hex').slice(0, 20);
  return path.join(dir, `lower-${key}.sqlite`);
}

export interface Row {
  id: number;
  stat: Stat;
  target: string | null;
  /** Packed (packXattrs); unpacked only when xattrs are asked for. */
  xattrs: Buffer | null;
}

const SCHEMA = `
  CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE entries(
    id INTEGER PRIMARY KEY, parent INTEGER NOT NULL, name TEXT NOT NULL,
    dev INTEGER NOT NULL, ino INTEGER NOT NULL, mode INTEGER NOT NULL, nlink INTEGER NOT NULL,
    uid INTEGER NOT NULL, gid INTEGER NOT NULL, rdev INTEGER NOT NULL, size INTEGER NOT NULL,
    blocks INTEGER NOT NULL, atime INTEGER NOT NULL, mtime INTEGER NOT NULL, ctime INTEGER NOT NULL,
    target TEXT, xattrs BLOB);
  CREATE UNIQUE INDEX entries_by_parent ON entries(parent, name);
`;

/** xattrs as one blob: name \0 length(u32le) value, repeated. Empty: null. */
export function packXattrs(host: string): Buffer | null {
  const n = native();
  let names: string[];
  try {
    names = n.llistxattr(host);
  } catch {
    return null;
  }
  if (names.length === 0) return null;
  const parts: Buffer[] = [];
  for (const name of names) {
    let v: Buffer;
    try {
      v = n.lgetxattr(host, name);
    } catch {
      continue;
    }
    const len = Buffer.alloc(4);
    len.writeUInt32LE(v.length);
    parts.push(Buffer.from(name + '\0'), len, v);
  }
  return Buffer.concat(parts);
}

export function unpackXattrs(b: Buffer | null): Map<string, Buffer> {
  const m = new Map<string, Buffer>();
  if (b === null) return m;
  let o = 0;
  while (o < b.length) {
    const z = b.indexOf(0, o);
    const name = b.toString('utf8', o, z);
    const len = b.readUInt32LE(z + 1);
    m.set(name, b.subarray(z + 5, z + 5 + len));
    o = z + 5 + len;
  }
  return m;
}

export interface BuildProgress {
  entries: number;
  dirsDone: number;
  dirsSeen: number;
}

const INSERT =
  'INSERT OR REPLACE INTO entries(parent, name, dev, ino, mode, nlink, uid, gid, rdev, size, blocks, atime, mtime, ctime, target, xattrs) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)';

/**
 * Inserts the named entries of one directory under parent (lstat, symlink
 * target, xattrs of each); returns the directories among them, to walk next.
 * Synchronous system calls: this runs in `layerfs index build`'s own process,
 * or once at mount for names a lower root gained.
 */
function insertEntries(
  insert: Database.Statement,
  hostDir: string,
  rel: string,
  parent: number,
  names: readonly string[],
): { added: number; dirs: Array<{ rel: string; id: number }> } {
  const dirs: Array<{ rel: string; id: number }> = [];
  let added = 0;
  for (const name of names) {
    const host = path.join(hostDir, name);
    let s: Stat;
    try {
      s = statFromNode(lstatSync(host, { bigint: true }));
    } catch {
      continue; // vanished meanwhile
    }
    const target = (s.mode & S_IFMT) === S_IFLNK ? readlinkSync(host) : null;
    const r = insert.run(
      parent, name, s.dev, s.ino, s.mode, s.nlink, s.uid, s.gid, s.rdev, s.size, s.blocks, s.atimeNs, s.mtimeNs, s.ctimeNs,
      target, packXattrs(host),
    );
    added++;
    if ((s.mode & S_IFMT) === S_IFDIR) dirs.push({ rel: rel === '' ? name : `${rel}/${name}`, id: Number(r.lastInsertRowid) });
  }
  return { added, dirs };
}

/**
 * Walks directories already in the index and inserts everything below them,
 * one transaction per directory (a directory's id exists before its
 * children go in); returns the number of entries added.
 */
function walkInto(db: Database.Database, root: string, start: Array<{ rel: string; id: number }>, progress?: (p: BuildProgress) => void): number {
  const insert = db.prepare(INSERT);
  const stack = [...start];
  const p: BuildProgress = { entries: 0, dirsDone: 0, dirsSeen: stack.length };
  const one = db.transaction((dir: { rel: string; id: number }) => {
    const hostDir = dir.rel === '' ? root : path.join(root, dir.rel);
    const { added, dirs } = insertEntries(insert, hostDir, dir.rel, dir.id, readdirSync(hostDir));
    p.entries += added;
    p.dirsSeen += dirs.length;
    stack.push(...dirs);
  });
  while (stack.length > 0) {
    one(stack.pop()!);
    p.dirsDone++;
    if (progress !== undefined && p.dirsDone % 200 === 0) progress(p);
  }
  progress?.(p);
  return p.entries;
}

export interface BuildResult {
  file: string;
  entries: number;
  seconds: number;
}

/**
 * Builds the index of one lower layer into dir (replacing any earlier one
 * atomically: built under a temporary name, then renamed).
 */
export function buildIndex(dir: string, layerRoot: string, progress?: (p: BuildProgress) => void): BuildResult {
  const t0 = process.hrtime.bigint();
  mkdirs(dir);
  const id = rootId(layerRoot);
  const file = indexFile(dir, id);
  const tmp = `${file}.${process.pid}.tmp`;
  rmSync(tmp, { force: true });
  const db = new Database(tmp);
  try {
    db.pragma('journal_mode = OFF');
    db.pragma('synchronous = OFF');
    db.exec(SCHEMA);
    const st = statFromNode(lstatSync(id.real, { bigint: true }));
    db.prepare(
      'INSERT INTO entries(id, parent, name, dev, ino, mode, nlink, uid, gid, rdev, size, blocks, atime, mtime, ctime, target, xattrs) VALUES (1,0,\'\',?,?,?,?,?,?,?,?,?,?,?,?,NULL,?)',
    ).run(st.dev, st.ino, st.mode, st.nlink, st.uid, st.gid, st.rdev, st.size, st.blocks, st.atimeNs, st.mtimeNs, st.ctimeNs, packXattrs(id.real));
    const entries = walkInto(db, id.real, [{ rel: '', id: 1 }], progress);
    const meta = db.prepare('INSERT INTO meta(key, value) VALUES (?, ?)');
    for (const [k, v] of Object.entries({
      format: FORMAT,
      root: id.real,
      dev: String(id.dev),
      ino: String(id.ino),
      mtime: String(id.mtimeNs),
      ctime: String(id.ctimeNs),
      entries: String(entries + 1),
      built: new Date().toISOString(),
    })) {
      meta.run(k, v);
    }
    db.close();
    renameSync(tmp, file);
    return { file, entries: entries + 1, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
  } catch (err) {
    if (db.open) db.close();
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** An index file's meta table. */
export function readMeta(db: Database.Database): Map<string, string> {
  return new Map((db.prepare('SELECT key, value FROM meta').all() as Array<{ key: string; value: string }>).map((r) => [r.key, r.value]));
}

/** Whether meta (readMeta) is that of an index of this format for the layer id. */
export function describesLayer(meta: Map<string, string>, id: RootId): boolean {
  return meta.get('format') === FORMAT && meta.get('dev') === String(id.dev) && meta.get('ino') === String(id.ino) && meta.get('root') === id.real;
}

export const NOT_OF_LAYER = 'index is of another layer or format: rebuild it';

/** Why an index file that would not open or be read is not used. */
export function unreadable(file: string, err: unknown): string {
  return `index ${file} is unreadable (${err instanceof Error ? err.message : String(err)})`;
}

export type OpenResult =
  | { index: LowerIndex; grew: string[]; unindexed: string[] }
  | { index: undefined; why: string };

/**
 * Opens the index of a layer if there is a usable one. Names new in the
 * layer's root are indexed first (they are what a growing store adds).
 */
export function openIndex(dir: string, layerRoot: string): OpenResult {
  let file: string;
  let id: RootId;
  try {
    id = rootId(layerRoot);
    file = indexFile(dir, id);
  } catch (err) {
    return { index: undefined, why: (err as Error).message };
  }
  let db: Database.Database;
  try {
    // A short busy timeout: only growth writes wait, and they have a fallback.
    db = new Database(file, { fileMustExist: true, timeout: 200 });
  } catch {
    return { index: undefined, why: 'not indexed' };
  }
  // An index is a cache: one that cannot be read (not SQLite, truncated)
  // is no index, and the mount goes on without it (and rebuilds it).
  let meta: Map<string, string>;
  try {
    meta = readMeta(db);
  } catch (err) {
    db.close();
    return { index: undefined, why: unreadable(file, err) };
  }
  if (!describesLayer(meta, id)) {
    db.close();
    return { index: undefined, why: NOT_OF_LAYER };
  }
  const index = new LowerIndex(db, id.real);
  let grew: string[] = [];
  let unindexed: string[] = [];
  if (meta.get('mtime') !== String(id.mtimeNs) || meta.get('ctime') !== String(id.ctimeNs)) {
    const indexed = new Set((db.prepare('SELECT name FROM entries WHERE parent = 1').pluck().all() as string[]));
    const now = new Set(readdirSync(id.real));
    const gone = [...indexed].filter((n) => !now.has(n));
    if (gone.length > 0) {
      db.close();
      return { index: undefined, why: `the layer changed (${gone.length} indexed name(s) gone from its root, e.g. '${gone[0]}'): rebuild with 'layerfs index build'` };
    }
    grew = [...now].filter((n) => !indexed.has(n));
    // Growth: index the new names (a few store paths, normally), unless a
    // running mount holds the file's shared lock (readOnlyFromNowOn); then
    // they are served from the layer itself, and a later mount indexes them.
    try {
      db.transaction(() => {
        const added = index.addRootNames(grew);
        db.prepare("UPDATE meta SET value = CAST(value AS INTEGER) + ? WHERE key = 'entries'").run(added);
        db.prepare('UPDATE meta SET value = ? WHERE key = ?').run(String(id.mtimeNs), 'mtime');
        db.prepare('UPDATE meta SET value = ? WHERE key = ?').run(String(id.ctimeNs), 'ctime');
      })();
    } catch (err) {
      if (!(typeof err === 'object' && err !== null && 'code' in err && String(err.code).startsWith('SQLITE_BUSY'))) throw err;
      unindexed = grew;
      grew = [];
    }
  }
  index.readOnlyFromNowOn();
  return { index, grew, unindexed };
}

/** Columns read for an entry, in this order (rows are read as arrays: no object per row). */
export const ROW_COLUMNS = 'id, dev, ino, mode, nlink, uid, gid, rdev, size, blocks, atime, mtime, ctime, target, xattrs';

/** An entry row as read with ROW_COLUMNS (integers as BigInt). */
export function toRow(r: unknown[]): Row {
  const n = (i: number) => Number(r[i] as bigint);
  return {
    id: n(0),
    stat: {
      dev: r[1] as bigint, ino: r[2] as bigint, mode: n(3), nlink: n(4), uid: n(5), gid: n(6), rdev: n(7), size: n(8), blocks: n(9), blksize: 4096,
      atimeNs: r[10] as bigint, mtimeNs: r[11] as bigint, ctimeNs: r[12] as bigint,
    },
    target: r[13] as string | null,
    xattrs: r[14] as Buffer | null,
  };
}

/** Read access to one layer's index (and growth of its root). */
export class LowerIndex {
  private readonly byName: Database.Statement;
  private readonly children: Database.Statement;
  private readonly rootRow: Database.Statement;
  /** Directory layer path -> row id; directories only, bounded. */
  private readonly dirIds = new Map<string, number>([['', 1]]);
  /**
   * The last path looked up and its row: resolving a directory asks for its
   * stat, then its xattrs, one query instead of two. Rows never change while
   * the index is open (growth is indexed at open).
   */
  private lastPath: string | undefined;
  private lastRow: Row | undefined;
  queries = 0;

  constructor(
    private readonly db: Database.Database,
    readonly root: string,
  ) {
    this.byName = db.prepare(`SELECT ${ROW_COLUMNS} FROM entries WHERE parent = ? AND name = ?`).safeIntegers(true).raw(true);
    this.children = db.prepare('SELECT name, mode FROM entries WHERE parent = ?').raw(true);
    this.rootRow = db.prepare(`SELECT ${ROW_COLUMNS} FROM entries WHERE id = 1`).safeIntegers(true).raw(true);
  }

  /**
   * Entries in the index, as recorded at build and growth: counting them
   * would read the whole file (a second at mount time for 1M entries on a
   * cold page cache).
   */
  get entries(): number {
    const v = this.db.prepare("SELECT value FROM meta WHERE key = 'entries'").pluck().get() as string | undefined;
    return v !== undefined ? Number(v) : Number(this.db.prepare('SELECT count(*) FROM entries').pluck().get());
  }

  /**
   * From now on this connection only reads: keep SQLite's shared lock instead
   * of taking and dropping it (two fcntl calls and a header read) for every
   * query, about half a lookup's cost. Other readers are not affected; a
   * writer to this file (another mount indexing growth) gets SQLITE_BUSY and
   * serves its new names from the layer instead.
   */
  readOnlyFromNowOn(): void {
    this.db.pragma('locking_mode = EXCLUSIVE');
  }

  /** The entry at layer path p, or undefined when absent (or under a non-directory). */
  lookup(p: string): Row | undefined {
    if (p === this.lastPath) return this.lastRow;
    this.queries++;
    let row: Row | undefined;
    if (p === '') row = toRow(this.rootRow.get() as unknown[]);
    else {
      const i = p.lastIndexOf('/');
      const parent = this.dirId(i < 0 ? '' : p.slice(0, i));
      const r = parent === undefined ? undefined : (this.byName.get(BigInt(parent), p.slice(i + 1)) as unknown[] | undefined);
      row = r === undefined ? undefined : toRow(r);
    }
    this.lastPath = p;
    this.lastRow = row;
    return row;
  }

  private dirId(p: string): number | undefined {
    const hit = this.dirIds.get(p);
    if (hit !== undefined) return hit;
    const r = this.lookup(p);
    if (r === undefined || (r.stat.mode & S_IFMT) !== S_IFDIR) return undefined;
    if (this.dirIds.size > 100_000) this.dirIds.clear();
    this.dirIds.set(p, r.id);
    return r.id;
  }

  /** Entries of the directory at p; undefined when p is not an indexed directory. */
  readdir(p: string): DirEntry[] | undefined {
    const id = this.dirId(p);
    if (id === undefined) return undefined;
    this.queries++;
    return (this.children.all(id) as Array<[string, number]>).map(([name, mode]) => ({ name, type: mode & S_IFMT }));
  }

  /** Indexes names that appeared in the layer's root (and everything under them). */
  addRootNames(names: readonly string[]): number {
    if (names.length === 0) return 0;
    const { added, dirs } = this.db.transaction(() => insertEntries(this.db.prepare(INSERT), this.root, '', 1, names))();
    return added + walkInto(this.db, this.root, dirs);
  }

  close(): void {
    this.db.close();
  }
}
