// `layerfs index check`: walks a lower layer next to its index and names every
// difference. Opening an index (lower-index.ts) only compares the layer's root,
// which catches a Nix store that grew or lost store paths; a change deeper in
// the layer (a file rewritten, chmod'ed, added or removed inside a store path)
// breaks the overlay contract and can only be found by this walk, which costs
// what building the index costs (an lstat, and xattr and symlink reads, per
// entry). The index file is opened read-only: a mount using it may keep running.
//
// What counts as a difference is what the index serves: the type and
// permission bits, owner, size, blocks, link count, device and inode numbers,
// mtime, ctime, the symlink target and every xattr; not atime, which every
// read of the layer moves. Names new in the layer's root are
// growth (Nix's contract), which the next mount indexes: reported, not a
// difference. The root's own mtime, ctime, size and link count change with
// growth and are not compared either.
import Database from 'better-sqlite3';
import { lstatSync, readdirSync, readlinkSync } from 'fs';
import * as path from 'path';
import { S_IFDIR, S_IFLNK, S_IFMT, type Stat } from '../core/stat';
import { statFromNode } from '../layers/host';
import {
  describesLayer,
  indexFile,
  NOT_OF_LAYER,
  packXattrs,
  readMeta,
  rootId,
  ROW_COLUMNS,
  toRow,
  unpackXattrs,
  unreadable,
  type BuildProgress,
  type Row,
} from './lower-index';

/** One entry where the layer and its index disagree; path is relative to the layer root. */
export type IndexDifference =
  | { kind: 'gone'; path: string }
  | { kind: 'new'; path: string }
  | { kind: 'changed'; path: string; fields: string[] };

export type CheckResult =
  | {
      file: string;
      /** Entries compared (both in the layer and in the index). */
      checked: number;
      differences: IndexDifference[];
      /** Names in the layer's root that the index does not have yet (growth). */
      grew: string[];
      seconds: number;
    }
  | { file: string; why: string };

const STAT_FIELDS = ['dev', 'ino', 'nlink', 'uid', 'gid', 'rdev', 'size', 'blocks'] as const;

function timeOf(ns: bigint): string {
  const s = ns / 1_000_000_000n;
  const frac = (ns % 1_000_000_000n).toString().padStart(9, '0');
  return `${new Date(Number(s) * 1000).toISOString().slice(0, 19)}.${frac}Z`;
}

/** The fields of `was` (indexed) that `now` (the layer) no longer has, as "name old -> new". */
function statChanges(was: Stat, now: Stat, isRoot: boolean): string[] {
  const out: string[] = [];
  if (was.mode !== now.mode) out.push(`mode ${was.mode.toString(8)} -> ${now.mode.toString(8)}`);
  for (const f of STAT_FIELDS) {
    if (isRoot && (f === 'size' || f === 'nlink' || f === 'blocks')) continue;
    if (was[f] !== now[f]) out.push(`${f} ${was[f]} -> ${now[f]}`);
  }
  if (!isRoot) {
    if (was.mtimeNs !== now.mtimeNs) out.push(`mtime ${timeOf(was.mtimeNs)} -> ${timeOf(now.mtimeNs)}`);
    if (was.ctimeNs !== now.ctimeNs) out.push(`ctime ${timeOf(was.ctimeNs)} -> ${timeOf(now.ctimeNs)}`);
  }
  return out;
}

function xattrChanges(was: Buffer | null, host: string): string[] {
  const a = unpackXattrs(was);
  const b = unpackXattrs(packXattrs(host));
  const out: string[] = [];
  for (const [name, v] of a) {
    const w = b.get(name);
    if (w === undefined) out.push(`xattr ${name} removed`);
    else if (!w.equals(v)) out.push(`xattr ${name} changed`);
  }
  for (const name of b.keys()) if (!a.has(name)) out.push(`xattr ${name} added`);
  return out;
}

/** A name removed (or replaced by a non-directory) while the walk ran: a difference, not a failure. */
function vanished(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/**
 * Compares the lower layer at layerRoot with its index in dir. Never writes
 * the index. Directories the layer and the index both have are walked; a
 * name only one side has is one difference (its subtree is not listed).
 */
export function checkIndex(dir: string, layerRoot: string, progress?: (p: BuildProgress) => void): CheckResult {
  const t0 = process.hrtime.bigint();
  const id = rootId(layerRoot);
  const file = indexFile(dir, id);
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
  } catch {
    return { file, why: `not indexed in ${dir}` };
  }
  try {
    let meta: Map<string, string>;
    try {
      meta = readMeta(db);
    } catch (err) {
      return { file, why: unreadable(file, err) };
    }
    if (!describesLayer(meta, id)) return { file, why: NOT_OF_LAYER };
    const children = db.prepare(`SELECT name, ${ROW_COLUMNS} FROM entries WHERE parent = ?`).safeIntegers(true).raw(true);
    const rootRow = toRow(db.prepare(`SELECT ${ROW_COLUMNS} FROM entries WHERE id = 1`).safeIntegers(true).raw(true).get() as unknown[]);
    const differences: IndexDifference[] = [];
    const grew: string[] = [];
    let checked = 0;
    /** Compares one entry both sides have; true if it is a directory on both, to walk. */
    const compare = (rel: string, host: string, row: Row): boolean => {
      let now: Stat;
      try {
        now = statFromNode(lstatSync(host, { bigint: true }));
      } catch (err) {
        if (!vanished(err)) throw err;
        differences.push({ kind: 'gone', path: rel });
        return false;
      }
      checked++;
      const fields = statChanges(row.stat, now, rel === '');
      if ((now.mode & S_IFMT) === S_IFLNK && (row.stat.mode & S_IFMT) === S_IFLNK) {
        const target = readlinkSync(host);
        if (target !== row.target) fields.push(`target '${row.target}' -> '${target}'`);
      }
      fields.push(...xattrChanges(row.xattrs, host));
      if (fields.length > 0) differences.push({ kind: 'changed', path: rel === '' ? '.' : rel, fields });
      return (now.mode & S_IFMT) === S_IFDIR && (row.stat.mode & S_IFMT) === S_IFDIR;
    };
    const stack: Array<{ rel: string; id: number }> = [];
    if (compare('', id.real, rootRow)) stack.push({ rel: '', id: 1 });
    const p: BuildProgress = { entries: 0, dirsDone: 0, dirsSeen: stack.length };
    while (stack.length > 0) {
      const d = stack.pop()!;
      const hostDir = d.rel === '' ? id.real : path.join(id.real, d.rel);
      const indexed = new Map<string, Row>();
      for (const r of children.all(BigInt(d.id)) as unknown[][]) indexed.set(r[0] as string, toRow(r.slice(1)));
      let names: string[];
      try {
        names = readdirSync(hostDir);
      } catch (err) {
        if (!vanished(err)) throw err;
        differences.push({ kind: 'gone', path: d.rel });
        continue;
      }
      const here = new Set(names);
      for (const [name] of indexed) if (!here.has(name)) differences.push({ kind: 'gone', path: d.rel === '' ? name : `${d.rel}/${name}` });
      for (const name of names) {
        const rel = d.rel === '' ? name : `${d.rel}/${name}`;
        const row = indexed.get(name);
        if (row === undefined) {
          if (d.rel === '') grew.push(name);
          else differences.push({ kind: 'new', path: rel });
          continue;
        }
        p.entries++;
        if (compare(rel, path.join(hostDir, name), row)) {
          stack.push({ rel, id: row.id });
          p.dirsSeen++;
        }
      }
      p.dirsDone++;
      if (progress !== undefined && p.dirsDone % 200 === 0) progress(p);
    }
    progress?.(p);
    return { file, checked, differences, grew, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
  } finally {
    db.close();
  }
}
