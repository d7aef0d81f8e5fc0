// Copy-up: making a lower object an upper one, the way kernel overlayfs does
// (overlay-semantics.md, "Copy-up"), so that a crash at any point leaves either
// the old state or the new one:
//   1. the parent directories are copied up first, top-down;
//   2. the copy is built in the work directory under a temporary name: data
//      (holes kept), then xattrs (writing data clears security.capability, so
//      xattrs come after it), then owner, then mode (chown clears set-id bits,
//      so mode comes after it), then times;
//   3. it is renamed into place (RENAME_NOREPLACE), and the parent's times are
//      restored, so the copy-up itself is not visible as a change.
// A regular file with data is built whole (step 2, then fsync) WITHOUT holding
// the namespace lock, so a copy-up of a large file does not stall other
// operations, and its parents are copied up meanwhile; the commit (step 3)
// takes the lock and first checks that the path still resolves to the object
// that was copied. Concurrent copy-ups of one path share one job.
import { constants as fsc } from 'fs';
import { hasCode } from './errors';
import type { Layer, LayerFile, Loc, SeekableFile, UpperFile, UpperLayer } from './layer';
import { winner, type LayerEntry, type Resolution } from './lookup';
import { components, layerPath, mergedPath, parentOf, type LayerPath, type MergedPath } from './paths';
import { isDir, isReg, isSymlink, type Stat } from './stat';
import { isPrivateXattr } from './whiteout';

export interface CopyUpHost {
  readonly layers: readonly Layer[];
  readonly upper: UpperLayer;
  /** Runs fn under the overlay's namespace lock (and invalidates its cache after). */
  mutate<T>(fn: () => Promise<T>): Promise<T>;
  /** Whether owners can be set (the daemon runs privileged). */
  readonly privileged: boolean;
  /** fsync copied data before it is renamed into place (off with `volatile`). */
  readonly syncData: boolean;
  resolve(path: MergedPath): Promise<Resolution>;
  tmpName(): string;
  /**
   * Called once the copy of `from` is in place as `upper`; cached lookups are
   * stale from here on. ns: how long the copy took, data included.
   */
  copiedUp(path: MergedPath, from: LayerEntry, upper: Stat, ns: number): void;
}

const CHUNK = 1 << 20;

function sameObject(a: LayerEntry, b: LayerEntry): boolean {
  return a.layer === b.layer && a.stat.ino === b.stat.ino && a.stat.dev === b.stat.dev && a.stat.ctimeNs === b.stat.ctimeNs;
}

function isSeekable(f: LayerFile): f is SeekableFile {
  return typeof (f as Partial<SeekableFile>).nextData === 'function';
}

export class CopyUp {
  private readonly inflight = new Map<string, Promise<void>>();

  constructor(private readonly host: CopyUpHost) {}

  /**
   * Makes the object at path live in the upper layer, parents included.
   * Call WITHOUT the namespace lock. Resolves when the object is upper (or
   * throws, e.g. ENOENT if it vanished).
   */
  async ensure(path: MergedPath): Promise<void> {
    for (;;) {
      const pending = this.inflight.get(path);
      if (pending !== undefined) {
        await pending.catch(() => undefined);
        continue;
      }
      const r = await this.host.resolve(path);
      const top = winner(r)!;
      if (top.layer === 0) return;
      const job = this.copy(r, top);
      this.inflight.set(path, job);
      try {
        await job;
      } finally {
        this.inflight.delete(path);
      }
    }
  }

  /**
   * Copies up every directory from the root down to dir, inclusive, and
   * returns dir's fresh resolution. Call WITH the namespace lock held.
   */
  async dirsLocked(dir: MergedPath): Promise<Resolution> {
    let cur = mergedPath('/');
    let r = await this.host.resolve(cur);
    for (const name of components(dir)) {
      cur = (cur === '/' ? `/${name}` : `${cur}/${name}`) as MergedPath;
      r = await this.host.resolve(cur);
      const top = winner(r)!;
      if (!isDir(top.stat)) return r; // the caller reports ENOTDIR
      if (top.layer !== 0) {
        await this.commitLocked(cur, top, process.hrtime.bigint());
        r = await this.host.resolve(cur);
      }
    }
    return r;
  }

  private async copy(r: Resolution, top: LayerEntry): Promise<void> {
    const { host } = this;
    const t0 = process.hrtime.bigint();
    if (!isReg(top.stat) || top.stat.size === 0) {
      await host.mutate(async () => {
        await this.dirsLocked(parentOf(r.path));
        const now = winner(await host.resolve(r.path));
        if (now === undefined || now.layer === 0) return;
        await this.commitLocked(r.path, now, t0);
      });
      return;
    }
    // Regular file with data: built outside the lock in the work directory.
    // Its fsync runs on the threadpool; meanwhile the parents are copied up
    // under the lock, so a copy-up waits for the disk once, not for the disk
    // and then for its parents' copies in turn. The commit needs both done.
    const tmp = { work: host.tmpName() };
    let placed = false; // renamed into place: nothing left to remove
    try {
      const built = this.buildFile(r.path, top, tmp);
      const parents = host.mutate(() => this.dirsLocked(parentOf(r.path)));
      const [b, p] = await Promise.allSettled([built, parents]);
      if (b.status === 'rejected') throw b.reason;
      if (p.status === 'rejected') throw p.reason;
      await host.mutate(async () => {
        await this.dirsLocked(parentOf(r.path));
        const now = winner(await host.resolve(r.path));
        // Gone, already copied up, or replaced meanwhile: drop this copy; ensure() looks again.
        // (Same object means same ctime: the attributes given to the copy are still its own.)
        if (now === undefined || now.layer === 0 || !sameObject(now, top)) return;
        await this.placeLocked(r.path, now, tmp, t0);
        placed = true;
      });
    } finally {
      if (!placed) await host.upper.unlink(tmp).catch(() => undefined);
    }
  }

  /**
   * Builds the complete copy of a lower regular file in a new work file:
   * data (holes kept), then attributes (copyAttrs), then fsync, so that what
   * is renamed into place is on disk whole.
   */
  private async buildFile(path: MergedPath, from: LayerEntry, to: Loc): Promise<void> {
    const { host } = this;
    let src: LayerFile | undefined = await host.layers[from.layer].open(layerPath(path), fsc.O_RDONLY);
    let dst: UpperFile | undefined;
    try {
      dst = await host.upper.openFile(to, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY, 0o600);
      const size = from.stat.size;
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, size));
      let pos = 0;
      while (pos < size) {
        let start = pos;
        let end = size;
        if (isSeekable(src)) {
          const d = src.nextData(pos);
          if (d === null) break;
          start = d;
          end = Math.min(src.nextHole(d), size);
        }
        let off = start;
        while (off < end) {
          const n = await src.read(buf, 0, Math.min(buf.length, end - off), off);
          if (n === 0) break;
          let w = 0;
          while (w < n) w += await dst.write(buf, w, n - w, off + w);
          off += n;
        }
        if (off < end) break; // the file shrank under us: what was there is copied
        pos = end;
      }
      // A hole at the end (or a source that shrank) leaves the copy short:
      // the size is the one seen at lookup. Dense files skip this call
      // (truncate goes through the threadpool: it may free blocks).
      if (pos < size) await dst.truncate(size);
      await src.close();
      src = undefined;
      await this.copyAttrs(path, from, to);
      if (host.syncData) await dst.fsync(false);
    } finally {
      await dst?.close();
      await src?.close();
    }
  }

  /**
   * Builds the upper copy of a directory, symlink, device, fifo or empty
   * file at the merged path and renames it into place. The lock is held;
   * the parent is upper.
   */
  private async commitLocked(path: MergedPath, from: LayerEntry, t0: bigint): Promise<void> {
    const { host } = this;
    const { upper } = host;
    const st = from.stat;
    const tmp: Loc = { work: host.tmpName() };
    if (isDir(st)) await upper.mkdir(tmp, 0o700);
    else if (isSymlink(st)) await upper.symlink(await host.layers[from.layer].readlink(layerPath(path)), tmp);
    else await upper.mknod(tmp, st.mode, st.rdev);
    let placed = false;
    try {
      await this.copyAttrs(path, from, tmp);
      await this.placeLocked(path, from, tmp, t0);
      placed = true;
    } finally {
      if (!placed) await upper.rmtree(tmp).catch(() => undefined);
    }
  }

  /**
   * Gives the copy at tmp the lower object's xattrs, owner, mode and times,
   * in that order: writing data clears security.capability (so xattrs come
   * after the data), chown clears set-id bits (so mode comes after it), and
   * writing data sets the mtime (so times come last).
   */
  private async copyAttrs(path: MergedPath, from: LayerEntry, tmp: Loc): Promise<void> {
    const { host } = this;
    const { upper } = host;
    const st = from.stat;
    await copyXattrs(host.layers[from.layer], layerPath(path), upper, tmp, st);
    if (host.privileged) {
      try {
        await upper.chown(tmp, st.uid, st.gid);
      } catch (err) {
        // A daemon without CAP_CHOWN keeps foreign owners in an xattr,
        // which a symlink cannot carry: its copy is the daemon's own
        // (nothing checks a symlink's owner but sticky directories).
        if (!(isSymlink(st) && hasCode(err, 'EPERM'))) throw err;
      }
    }
    if (!isSymlink(st)) await upper.chmod(tmp, st.mode & 0o7777);
    await upper.utimens(tmp, st.atimeNs, st.mtimeNs);
  }

  /**
   * Renames the finished copy at tmp into place (never over an existing
   * name) and gives the parent its times back. The lock is held; the parent
   * is upper. If the rename fails, tmp is left for the caller to remove.
   */
  private async placeLocked(path: MergedPath, from: LayerEntry, tmp: Loc, t0: bigint): Promise<void> {
    const { upper } = this.host;
    const lp = layerPath(path);
    const parentLp = layerPath(parentOf(path));
    const pst = await upper.lstat(parentLp);
    await upper.rename(tmp, lp, RENAME_NOREPLACE);
    // In place: even if the parent's times cannot be restored, the cache must hear of it.
    try {
      await upper.utimens(parentLp, pst.atimeNs, pst.mtimeNs);
    } finally {
      this.host.copiedUp(path, from, await upper.lstat(lp), Number(process.hrtime.bigint() - t0));
    }
  }
}

// renameat2 flag; spelled out here so the core does not load the native addon.
export const RENAME_NOREPLACE = 1;
export const RENAME_EXCHANGE = 2;
export const RENAME_WHITEOUT = 4;

/**
 * Copies every xattr that is not the overlay's own; namespaces the upper lacks
 * are skipped. known: the lower object's stat as the layer gave it (an indexed
 * layer then answers from what it already read).
 */
export async function copyXattrs(lower: Layer, lp: LayerPath, upper: UpperLayer, to: Loc, known?: Stat): Promise<void> {
  let names: string[];
  try {
    names = await lower.listxattr(lp, known);
  } catch (err) {
    if (hasCode(err, 'ENOTSUP', 'EOPNOTSUPP')) return;
    throw err;
  }
  for (const name of names) {
    if (isPrivateXattr(name)) continue;
    let value: Buffer;
    try {
      value = await lower.getxattr(lp, name, known);
    } catch (err) {
      if (hasCode(err, 'ENODATA', 'EPERM', 'EACCES')) continue;
      throw err;
    }
    try {
      await upper.setxattr(to, name, value, 0);
    } catch (err) {
      if (hasCode(err, 'ENOTSUP', 'EOPNOTSUPP')) continue;
      throw err;
    }
  }
}
