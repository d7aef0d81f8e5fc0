// Copy-up: making a lower object an upper one, the way kernel overlayfs does
// (overlay-semantics.md, "Copy-up"), so that a crash at any point leaves either
// the old state or the new one:
//   1. the parent directories are copied up first, top-down;
//   2. the copy is built in the work directory under a temporary name: data
//      (holes kept), then owner, then xattrs, then mode (writing data and
//      chown(2) both clear security.capability, chown clears set-id bits:
//      xattrs and mode come after both), then times;
//   3. it is renamed into place (RENAME_NOREPLACE), and the parent's times are
//      restored, so the copy-up itself is not visible as a change.
// A regular file with data is built WITHOUT holding the namespace lock, so a
// copy-up of a large file does not stall other operations; the commit (step
// 3) takes the lock and first checks that the path still resolves to the
// object that was copied. Concurrent copy-ups of one path share one job.
//
// The open(2) that copies a file up (ensure with `adopt`) is given the work
// file itself, open read-write, instead of opening the upper file again once
// it is in place. Its data must be on disk before the rename (fsync, unless
// `volatile`), and waiting for that disk flush is most of a small file's
// copy-up; so for such an open the commit is deferred: the opener gets the
// work file as soon as it is built, and the fsync and the rename follow in
// the background (`placed`), in groups (group-commit.ts). Until then the
// path still resolves to the lower object; whoever needs its upper state
// (another open for write, stat, rename...) waits for `placed` through
// ensure() or Overlay's resolve. A crash before the commit leaves the lower
// file in view, and the writes made through the handle meanwhile lost, as
// unsynced writes may be; fsync(2) on the handle waits for the commit. If
// the path was removed or replaced in the meantime, the commit discards the
// copy: the opener keeps writing to a file that has no name any more, as
// with any file unlinked while open.
import { constants as fsc } from 'fs';
import { hasCode } from './errors';
import { GroupCommit } from './group-commit';
import type { Layer, LayerFile, Loc, SeekableFile, UpperFile, UpperLayer } from './layer';
import { winner, type LayerEntry, type Resolution } from './lookup';
import { components, layerPath, mergedPath, parentOf, type LayerPath, type MergedPath } from './paths';
import { isDir, isReg, isSymlink, S_IFMT, type Stat } from './stat';
import { isPrivateXattr } from './whiteout';

export interface CopyUpHost {
  readonly layers: readonly Layer[];
  readonly upper: UpperLayer;
  /** Runs fn under the overlay's namespace lock (and invalidates its cache after). */
  mutate<T>(fn: () => Promise<T>): Promise<T>;
  /** Whether owners can be set (the daemon runs privileged). */
  readonly privileged: boolean;
  /**
   * The owner an object made in the work directory gets, when the daemon
   * can also make it with its final mode and still write to it (root): a
   * copy of an object with that owner then needs no chown, and one without
   * set-id bits no chmod. undefined: copies are made owner-writable, then
   * chowned and chmodded.
   */
  readonly madeAs: { uid: number; gid: number } | undefined;
  /** fsync copied data before it is renamed into place (off with `volatile`). */
  readonly syncData: boolean;
  /**
   * Resolves a path without waiting for a deferred commit of it: the copy-up
   * code runs under the lock, which a commit needs (see Overlay.resolveNow).
   */
  resolve(path: MergedPath): Promise<Resolution>;
  tmpName(): string;
  /**
   * Called once the copy of `from` is in place as `upper`; cached lookups are
   * stale from here on.
   */
  copiedUp(path: MergedPath, from: LayerEntry, upper: Stat): void;
  /**
   * Told, for tracing, that path was copied from `from`: bytes of data, ns
   * taken. For a deferred commit, when the copy is handed to the opener
   * (the request it belongs to), not at the commit.
   */
  copied(path: MergedPath, from: LayerEntry, ns: number): void;
  /** A deferred commit failed; the opener's handle reports EIO from then on. */
  commitFailed(path: MergedPath, err: unknown): void;
}

/**
 * The copy an open(2) made, handed to it (ensure with `adopt`): the work file,
 * open read-write, with the lower file's data and attributes.
 */
export interface Adopted {
  file: UpperFile;
  /** The copy's stat (its inode is the one the upper file will have). */
  stat: Stat;
  /** Where it is until the commit renames it into place. */
  loc: Loc;
  /** The xattrs it was given; it has no others until its commit (writes can only remove). */
  xattrs: ReadonlySet<string>;
  /**
   * Settles once the copy is renamed into place, or discarded because the path
   * changed meanwhile. Never rejects; `failed` says whether the commit failed.
   * The file must stay open until then (the commit fsyncs it).
   */
  placed: Promise<void>;
  failed?: unknown;
}

/** What ensure() is asked by an open(2) that may keep the copy it makes. */
export interface AdoptRequest {
  /** O_TRUNC: the copy gets no data (as the kernel's copy-up of an O_TRUNC open). */
  truncate: boolean;
}

const CHUNK = 1 << 20;

function sameObject(a: LayerEntry, b: LayerEntry): boolean {
  return a.layer === b.layer && a.stat.ino === b.stat.ino && a.stat.dev === b.stat.dev && a.stat.ctimeNs === b.stat.ctimeNs;
}

function isSeekable(f: LayerFile): f is SeekableFile {
  return typeof (f as Partial<SeekableFile>).nextData === 'function';
}

export class CopyUp {
  /** Copy-ups under way, by path: settled once the copy is in place (or given up). */
  private readonly inflight = new Map<string, Promise<void>>();

  constructor(private readonly host: CopyUpHost) {}

  /** Deferred commits, synced in groups (group-commit.ts). */
  private readonly group = new GroupCommit();

  /**
   * The copy-up of path under way (a deferred commit included), if any. A
   * caller that waits for it gets its commit flushed now.
   */
  pending(path: MergedPath): Promise<void> | undefined {
    const p = this.inflight.size === 0 ? undefined : this.inflight.get(path);
    if (p !== undefined) this.group.urge();
    return p;
  }

  /** Every copy-up under way (at unmount, before closing files). */
  async settle(): Promise<void> {
    while (this.inflight.size > 0) {
      this.group.urge();
      await Promise.allSettled([...this.inflight.values()]);
    }
  }

  /**
   * Makes the object at path live in the upper layer, parents included.
   * Call WITHOUT the namespace lock. Resolves when the object is upper (or
   * throws, e.g. ENOENT if it vanished). With `adopt`, a regular file this
   * call copies is returned open (see Adopted); its commit may still be
   * under way. Otherwise, or when the object was already upper or copied up
   * by another caller, it resolves with undefined once the object is upper.
   */
  async ensure(path: MergedPath, adopt?: AdoptRequest): Promise<Adopted | undefined> {
    for (;;) {
      const pending = this.pending(path);
      if (pending !== undefined) {
        await pending;
        continue;
      }
      const r = await this.host.resolve(path);
      const top = winner(r)!;
      if (top.layer === 0) return undefined;
      const job = this.copy(r, top, adopt);
      const placed = job.then(
        (a) => a?.placed,
        () => undefined,
      );
      this.inflight.set(path, placed);
      void placed.then(() => {
        if (this.inflight.get(path) === placed) this.inflight.delete(path);
      });
      const adopted = await job;
      if (adopted !== undefined) return adopted;
      await placed;
    }
  }

  /**
   * Copies up every directory from the root down to dir, inclusive, and
   * returns dir's fresh resolution. Call WITH the namespace lock held.
   */
  async dirsLocked(dir: MergedPath): Promise<Resolution> {
    // An upper directory's ancestors are upper too (the upper layer is a
    // tree): the usual case, a copy-up next to earlier ones, needs no walk.
    const here = await this.host.resolve(dir);
    const top = winner(here);
    if (top !== undefined && top.layer === 0) return here;
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

  /**
   * Copies the object r resolves to. With adopt, a regular file's copy is
   * returned open (undefined if it could not be placed: ensure looks again);
   * otherwise it resolves with undefined once the copy is in place.
   */
  private async copy(r: Resolution, top: LayerEntry, adopt?: AdoptRequest): Promise<Adopted | undefined> {
    const { host } = this;
    const t0 = process.hrtime.bigint();
    const data = isReg(top.stat) && (top.stat.size > 0 || adopt !== undefined);
    if (!data) {
      await host.mutate(async () => {
        await this.dirsLocked(parentOf(r.path));
        const now = winner(await host.resolve(r.path));
        if (now === undefined || now.layer === 0) return;
        await this.commitLocked(r.path, now, t0);
      });
      return undefined;
    }
    // A regular file: built outside the lock in the work directory, its
    // parents copied up meanwhile under the lock; both are needed before
    // the commit.
    const tmp = { work: host.tmpName() };
    let file: UpperFile | undefined;
    let placed = false; // renamed into place: nothing left to remove
    const discard = async (): Promise<void> => {
      if (!placed) await host.upper.unlink(tmp).catch(() => undefined);
    };
    // The copy's own stat (for the opener: its inode is the upper file's).
    let stat: Stat | undefined;
    let xattrs: ReadonlySet<string> = new Set();
    try {
      ({ file, xattrs } = await this.buildFile(r.path, top, tmp, adopt?.truncate ?? false));
      if (adopt !== undefined) stat = await file.stat();
      await host.mutate(() => this.dirsLocked(parentOf(r.path)));
    } catch (err) {
      await file?.close().catch(() => undefined);
      await discard();
      throw err;
    }
    const built = file;
    // Deferred: the opener writes to the work file while it is synced and
    // renamed into place (volatile: nothing to wait for, in place at once).
    const deferred = stat !== undefined && host.syncData;
    // The commit: under the lock, if the path still names the object that
    // was copied (gone, already copied up, or replaced meanwhile: the copy
    // is dropped). Same object means same ctime: the attributes given to
    // the copy are still its own.
    const commit = (): Promise<void> =>
      host.mutate(async () => {
        const now = winner(await host.resolve(r.path));
        if (now === undefined || now.layer === 0 || !sameObject(now, top)) return;
        await this.placeLocked(r.path, now, tmp, deferred ? undefined : t0, () => (placed = true));
      });
    if (!deferred || stat === undefined) {
      // In place before returning: synced first unless volatile.
      try {
        if (host.syncData) await built.fsync(false);
        await commit();
      } catch (err) {
        await built.close().catch(() => undefined);
        throw err;
      } finally {
        await discard();
      }
      if (stat === undefined || !placed) {
        await built.close();
        return undefined;
      }
      return { file: built, stat, loc: tmp, xattrs, placed: Promise.resolve() };
    }
    host.copied(r.path, top, Number(process.hrtime.bigint() - t0));
    const adopted: Adopted = { file: built, stat, loc: tmp, xattrs, placed: Promise.resolve() };
    adopted.placed = this.group
      .add({
        sync: () => built.fsync(false),
        commit,
        failed: (err) => {
          adopted.failed = err;
          host.commitFailed(r.path, err);
        },
      })
      .then(discard);
    return adopted;
  }

  /**
   * Builds the copy of a lower regular file in a new work file: data (holes
   * kept; none with truncate), then attributes (copyAttrs). Returns the work
   * file, open read-write and not yet synced, and the xattrs it was given.
   */
  private async buildFile(path: MergedPath, from: LayerEntry, to: Loc, truncate: boolean): Promise<{ file: UpperFile; xattrs: ReadonlySet<string> }> {
    const { host } = this;
    const dst = await host.upper.openFile(to, fsc.O_CREAT | fsc.O_EXCL | fsc.O_RDWR, this.makeMode(from.stat, 0o600));
    try {
      if (!truncate) await this.copyData(path, from, dst);
      return { file: dst, xattrs: await this.copyAttrs(path, from, to) };
    } catch (err) {
      await dst.close().catch(() => undefined);
      throw err;
    }
  }

  /**
   * The mode a copy is made with: its final permission bits when the daemon
   * makes it as root (madeAs), set-id bits left to copyAttrs (chown clears
   * them); otherwise owner-only, for copyAttrs to chmod.
   */
  private makeMode(st: Stat, ownerOnly: number): number {
    return this.host.madeAs !== undefined ? st.mode & 0o777 : ownerOnly;
  }

  /** The lower file's data into dst, holes kept. */
  private async copyData(path: MergedPath, from: LayerEntry, dst: UpperFile): Promise<void> {
    const size = from.stat.size;
    if (size === 0) return;
    const src = await this.host.layers[from.layer].open(layerPath(path), fsc.O_RDONLY);
    try {
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, size));
      // A file with as many blocks as bytes has no hole worth keeping
      // (most files): one read, no SEEK_DATA/SEEK_HOLE probing.
      const dense = size <= CHUNK && from.stat.blocks * 512 >= size;
      let pos = 0;
      while (pos < size) {
        let start = pos;
        let end = size;
        if (!dense && isSeekable(src)) {
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
    } finally {
      await src.close();
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
    if (isDir(st)) await upper.mkdir(tmp, this.makeMode(st, 0o700));
    else if (isSymlink(st)) await upper.symlink(await host.layers[from.layer].readlink(layerPath(path)), tmp);
    else await upper.mknod(tmp, (st.mode & S_IFMT) | this.makeMode(st, st.mode & 0o7777), st.rdev);
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
   * Gives the copy at tmp the lower object's owner, xattrs, mode and times,
   * in that order: chown(2) clears security.capability and set-id bits (so
   * the xattrs and the mode come after it; kernel overlayfs sets the owner
   * without that side effect), writing data clears security.capability too
   * (the data is already in), and both set the ctime/mtime (times last). A
   * copy the daemon made as root with its final mode (madeAs) skips the
   * chown when the owner is already right and the chmod without set-id
   * bits. Returns the xattrs set.
   */
  private async copyAttrs(path: MergedPath, from: LayerEntry, tmp: Loc): Promise<ReadonlySet<string>> {
    const { host } = this;
    const { upper } = host;
    const st = from.stat;
    const own = host.madeAs;
    if (host.privileged && (own === undefined || own.uid !== st.uid || own.gid !== st.gid)) {
      try {
        await upper.chown(tmp, st.uid, st.gid);
      } catch (err) {
        // A daemon without CAP_CHOWN keeps foreign owners in an xattr,
        // which a symlink cannot carry: its copy is the daemon's own
        // (nothing checks a symlink's owner but sticky directories).
        if (!(isSymlink(st) && hasCode(err, 'EPERM'))) throw err;
      }
    }
    const xattrs = await copyXattrs(host.layers[from.layer], layerPath(path), upper, tmp, st);
    if (!isSymlink(st) && (own === undefined || (st.mode & 0o7000) !== 0)) await upper.chmod(tmp, st.mode & 0o7777);
    await upper.utimens(tmp, st.atimeNs, st.mtimeNs);
    return xattrs;
  }

  /**
   * Renames the finished copy at tmp into place (never over an existing
   * name) and gives the parent its times back. The lock is held; the parent
   * is upper. If the rename fails, tmp is left for the caller to remove;
   * renamed() is called as soon as it succeeded. t0: when the copy began,
   * for tracing (undefined: already told, see copied()).
   */
  private async placeLocked(path: MergedPath, from: LayerEntry, tmp: Loc, t0: bigint | undefined, renamed?: () => void): Promise<void> {
    const { upper } = this.host;
    const lp = layerPath(path);
    const parentLp = layerPath(parentOf(path));
    const pst = await upper.lstat(parentLp);
    await upper.rename(tmp, lp, RENAME_NOREPLACE);
    renamed?.();
    // In place: even if the parent's times cannot be restored, the cache must hear of it.
    try {
      await upper.utimens(parentLp, pst.atimeNs, pst.mtimeNs);
    } finally {
      if (t0 !== undefined) this.host.copied(path, from, Number(process.hrtime.bigint() - t0));
      this.host.copiedUp(path, from, await upper.lstat(lp));
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
 * layer then answers from what it already read). Returns the names set.
 */
export async function copyXattrs(lower: Layer, lp: LayerPath, upper: UpperLayer, to: Loc, known?: Stat): Promise<Set<string>> {
  const set = new Set<string>();
  let names: string[];
  try {
    names = await lower.listxattr(lp, known);
  } catch (err) {
    if (hasCode(err, 'ENOTSUP', 'EOPNOTSUPP')) return set;
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
      set.add(name);
    } catch (err) {
      if (hasCode(err, 'ENOTSUP', 'EOPNOTSUPP')) continue;
      throw err;
    }
  }
  return set;
}
