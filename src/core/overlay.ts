// The overlay: the facade that owns the layers and all per-mount state, and
// answers filesystem operations on merged paths. Transports (src/fuse) call
// these methods and map thrown FsErrors to errnos; nothing here knows FUSE.
//
// Without an upper layer every modifying operation throws EROFS. With one, the
// write path follows kernel overlayfs (overlay-semantics.md): copy-up
// (copyup.ts), whiteouts and opaque directories (markers.ts), and namespace
// operations that build new objects in the work directory and rename them into
// place, so each change appears at once and a crash leaves no partial object.
// Namespace mutations are serialized by one mutex (lock.ts); reads never wait.
import { constants as fsc } from 'fs';
import { DEFAULT_LIMITS, MetadataCache, type CacheLimits, type CachedNode } from '../cache/metadata';
import { fsError, hasCode } from './errors';
import { CopyUp, RENAME_EXCHANGE, RENAME_NOREPLACE, RENAME_WHITEOUT, type Adopted } from './copyup';
import { InodeNumbers } from './inode';
import { LazyFile } from './lazy-file';
import { INCOMPAT_DIR, type Layer, type LayerFile, type Loc, type TimeSpec, type UpperFile, type UpperLayer } from './layer';
import { Mutex } from './lock';
import { isMerged, resolveChild, resolveRoot, winner, withUpperCopy, type LayerEntry, type Resolution } from './lookup';
import { Markers, probeMarkers, type MarkerConfig } from './markers';
import { baseName, layerChild, layerPath, mergedPath, parentOf, type LayerPath, type MergedPath } from './paths';
import { readMergedDir, type MergedDirEntry } from './readdir';
import type { TraceHook } from './trace';
import { isDir, isReg, isSymlink, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, type Stat, type StatFs } from './stat';
import { isPrivateXattr, isWhiteoutName, readDirMarkers, WHITEOUT_PREFIX, type WhiteoutForm } from './whiteout';

export interface OverlayConfig {
  /** Layers top-down: the upper (if any) first, then lowerdir in mount order. */
  layers: Layer[];
  /** Display names, same order ("upper", "lower1", ...). */
  layerNames: string[];
  /** The writable layer; when given it must be layers[0]. */
  upper?: UpperLayer;
  /** Whether the daemon can set owners and make device nodes (root). Default: euid 0. */
  privileged?: boolean;
  /** Write overlay.* xattrs in the user namespace (the kernel's `userxattr`). */
  userxattr?: boolean;
  /** Skip fsync of copied-up data (the kernel's `volatile`). */
  volatile?: boolean;
  /** Metadata cache bounds; false turns the cache off (layers that change underneath). */
  cache?: CacheLimits | false;
}

/**
 * Paths whose cached state outside the overlay (the kernel's dentry, attribute
 * and page caches) went stale through a side effect the caller of the
 * operation cannot know about: a copy-up touching its parent directory, a
 * hard link's other names, an explicit invalidation.
 */
export type InvalidateHook = (path: MergedPath, what: 'attr' | 'entry') => void;

/** Who asks: the credentials FUSE passes with each request. */
export interface Caller {
  uid: number;
  gid: number;
  pid: number;
}

/** What setattr changes; absent fields stay. */
export interface SetAttr {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  atime?: TimeSpec;
  mtime?: TimeSpec;
  /**
   * After the rest, clear set-user-ID, and set-group-ID when the file is
   * group-executable or the caller (whose gid this is) is not in its group,
   * as the kernel's setattr_should_drop_suidgid() does: for a write or
   * truncate by a caller without CAP_FSETID (the kernel decides that and says
   * so; with FUSE_HANDLE_KILLPRIV_V2 the clearing is ours). Only the caller's
   * primary group is known here, so one in the file's group through a
   * supplementary group loses set-group-ID where the kernel would keep it.
   */
  killSuidgid?: { gid: number };
}

const ACCESS_MODE = fsc.O_RDONLY | fsc.O_WRONLY | fsc.O_RDWR;
/** Flags that make open(2) modify the file, and so copy it up. */
function opensForWrite(flags: number): boolean {
  return (flags & ACCESS_MODE) !== fsc.O_RDONLY || (flags & fsc.O_TRUNC) !== 0;
}
/** The open flags passed on to the layer file; the rest are the kernel's business. */
const PASS_FLAGS = ACCESS_MODE | fsc.O_TRUNC | fsc.O_SYNC | fsc.O_DSYNC | fsc.O_NONBLOCK;
const S_ISUID = 0o4000;
const S_ISGID = 0o2000;

interface Handle {
  file: LayerFile;
  layer: number;
  path: MergedPath;
  /** For lower files: the object's identity, to notice a later copy-up. */
  origin?: string;
  /** For upper files: the stat at open, whose inode a write through the handle changes. */
  upper?: Stat;
  /** The copy-up this open made, while its commit may be under way (copyup.ts, Adopted). */
  copy?: Adopted;
  /** Opened for writing. */
  writable?: boolean;
  /** Its reads and writes bypass the overlay (a transport passed the file through). */
  bypassed?: boolean;
}

function entryKey(e: LayerEntry): string {
  return `${e.layer}:${e.stat.dev}:${e.stat.ino}`;
}
function devIno(st: Stat): string {
  return `${st.dev}:${st.ino}`;
}

export class Overlay {
  readonly layers: readonly Layer[];
  readonly layerNames: readonly string[];
  readonly upper: UpperLayer | undefined;
  readonly privileged: boolean;
  /** The ids objects created by this process get (fsuid, fsgid). */
  private readonly ownUid = process.geteuid?.() ?? 0;
  private readonly ownGid = process.getegid?.() ?? 0;
  private inodes!: InodeNumbers;
  private root!: Resolution;
  /** What lookup and readdir decided, invalidated exactly by every mutation (cache/metadata.ts). */
  readonly cache: MetadataCache;
  /** Told about side effects the kernel cannot see (set by the transport). */
  onInvalidate: InvalidateHook | undefined;
  /** Told about every decision while tracing is on (core/trace.ts); undefined otherwise. */
  trace: TraceHook | undefined;
  /** Told about failures no request reports (a deferred copy-up commit); the daemon logs them. */
  onProblem: ((what: string, err: unknown) => void) | undefined;
  private markers: Markers | undefined;
  private copyUp: CopyUp | undefined;
  private readonly lock = new Mutex();
  private readonly files = new Map<number, Handle>();
  /** Copies made by open(2) whose commit is under way, by path (copyup.ts, Adopted). */
  private readonly copies = new Map<MergedPath, Adopted>();
  private nextFh = 1;
  private tmpSeq = 0;
  /** Upper objects that are copies of lower ones: upper dev:ino -> the st_ino shown before. */
  private readonly stableIno = new Map<string, bigint>();
  /** Lower objects copied up during this mount (entryKey). */
  private readonly copiedOrigins = new Set<string>();
  /** Copy-ups done, for status and tests. */
  copyUps = 0;

  private constructor(cfg: OverlayConfig) {
    this.layers = cfg.layers;
    this.layerNames = cfg.layerNames;
    this.upper = cfg.upper;
    this.privileged = cfg.privileged ?? process.geteuid?.() === 0;
    this.cache = new MetadataCache(cfg.cache === false ? undefined : (cfg.cache ?? DEFAULT_LIMITS));
    if (cfg.upper !== undefined && cfg.layers[0] !== cfg.upper) throw new Error('the upper layer must be layers[0]');
  }

  /**
   * Opens the overlay: every layer root must be a directory. With an upper
   * layer, leftovers of an earlier mount are cleared from the work directory
   * and the marker forms are probed there.
   */
  static async open(cfg: OverlayConfig): Promise<Overlay> {
    if (cfg.layers.length === 0) throw fsError('EINVAL', 'mount', undefined, 'no layers');
    const ov = new Overlay(cfg);
    await ov.refreshRoot();
    ov.inodes = new InodeNumbers(ov.root.entries.map((e) => e.stat.dev));
    if (cfg.upper !== undefined) {
      const upper = cfg.upper;
      // work/incompat (INCOMPAT_DIR) is kept; validateMount refused the
      // layers if it names a feature. A volatile mount names itself there,
      // as the kernel's does: the next mount (ours or the kernel's) refuses
      // until someone who knows the upper survived removes the mark.
      for (const name of await upper.listWork()) if (name !== INCOMPAT_DIR) await upper.rmtree({ work: name });
      if (cfg.volatile) {
        // The kernel's exact path (ovl_create_volatile_dirty).
        for (const d of [INCOMPAT_DIR, `${INCOMPAT_DIR}/volatile`, `${INCOMPAT_DIR}/volatile/dirty`]) {
          await upper.mkdir({ work: d }, 0o700).catch((err: unknown) => {
            if (!hasCode(err, 'EEXIST')) throw err;
          });
        }
      }
      const config = await probeMarkers(upper, { userxattr: cfg.userxattr ?? false }, () => ov.tmpName());
      ov.markers = new Markers(upper, config);
      // Root makes copies with their final mode and its own ids (a set-gid
      // work directory would give them its group instead: then chown always).
      const workSetgid = ((await upper.lstatAt({ work: '.' })).mode & S_ISGID) !== 0;
      const madeAs = ov.ownUid === 0 && !workSetgid ? { uid: ov.ownUid, gid: ov.ownGid } : undefined;
      ov.copyUp = new CopyUp({
        layers: ov.layers,
        upper,
        mutate: (fn) => ov.mutate(fn),
        privileged: ov.privileged,
        madeAs,
        syncData: !(cfg.volatile ?? false),
        resolve: (p) => ov.resolveNow(p),
        tmpName: () => ov.tmpName(),
        commitFailed: (path, err) => ov.onProblem?.(`copy-up of '${path}' (its open handle now fails with EIO)`, err),
        copied: (path, from, ns) => ov.trace?.copiedUp(path, from.layer, isReg(from.stat) ? from.stat.size : 0, ns),
        copiedUp: (path, from, st) => {
          // The mutation that copied up may look the path up again before it
          // ends (a rename copies up both parents): the cache learns now.
          // The object has an upper part (whose resolution is known without
          // reading the layers), and its parent's upper directory got a new
          // entry (and its times back).
          const node = ov.cache.peek(path);
          if (node !== undefined && !node.dead && winner(node.r) === from) {
            ov.cache.copiedUp(node, withUpperCopy(node.r, st));
            ov.changedParentOf(path);
          } else {
            ov.dropNames([path]);
          }
          // Whoever caches attributes outside (the kernel) holds the lower
          // object's for path, and the parent's from before it got a new
          // entry: both now show their upper objects' ctime (the times put
          // back cannot include it). Every directory a copy-up makes comes
          // through here, the ancestors copied up with a file included.
          ov.onInvalidate?.(path, 'attr');
          ov.onInvalidate?.(parentOf(path), 'attr');
          ov.copyUps++;
          ov.copiedOrigins.add(entryKey(from));
          ov.stableIno.set(devIno(st), ov.stableIno.get(devIno(from.stat)) ?? ov.inodes.of(from));
        },
      });
    }
    return ov;
  }

  private async refreshRoot(): Promise<void> {
    this.root = await resolveRoot(this.layers);
    for (const e of this.root.entries) {
      if (!isDir(e.stat)) throw fsError('ENOTDIR', 'mount', this.layers[e.layer].root);
    }
  }

  get readOnly(): boolean {
    return this.upper === undefined;
  }

  get samefs(): boolean {
    return this.inodes.samefs;
  }

  /** The marker forms this mount writes (undefined when read-only). */
  get markerConfig(): MarkerConfig | undefined {
    return this.markers?.config;
  }

  private tmpName(): string {
    return `#layerfs.${process.pid}.${++this.tmpSeq}`;
  }

  /**
   * Resolves a merged path; absent final components throw ENOENT. A path
   * whose copy-up is being committed (copyup.ts, deferred commit) is
   * resolved once the commit is done. Not for use under the namespace lock,
   * which the commit needs: see resolveNow.
   */
  async resolve(path: string): Promise<Resolution> {
    const r = await this.resolveMaybe(path);
    if (r.entries.length === 0) throw fsError('ENOENT', 'lookup', r.path);
    return r;
  }

  /** Like resolve, but an absent final component gives an empty resolution. */
  async resolveMaybe(path: string): Promise<Resolution> {
    const p = mergedPath(path);
    const pending = this.copyUp?.pending(p);
    if (pending !== undefined) await pending;
    return (await this.node(p)).r;
  }

  /**
   * Which layers make up path, for an answer that does not show its
   * attributes (xattrs): the winner's stat may be older than its last write
   * or chmod (not re-read, as resolve does), its layers and markers are not.
   */
  private async resolveLayers(path: string): Promise<Resolution> {
    const p = mergedPath(path);
    const pending = this.copyUp?.pending(p);
    if (pending !== undefined) await pending;
    const r = (await this.node(p, false)).r;
    if (r.entries.length === 0) throw fsError('ENOENT', 'lookup', r.path);
    return r;
  }

  /**
   * Resolves without waiting for a copy-up commit: under the namespace lock
   * (the copy-up code, rename's second look). A path being committed still
   * resolves to its lower object, as it does until the rename; the commit
   * checks again under the lock and drops its copy if the path changed.
   */
  async resolveNow(path: string, allowAbsent = false): Promise<Resolution> {
    const r = (await this.node(mergedPath(path))).r;
    if (!allowAbsent && r.entries.length === 0) throw fsError('ENOENT', 'lookup', r.path);
    return r;
  }

  /**
   * The cache node for p, resolved through its parent's node: a hit costs no
   * layer access, unless the winner is an upper object changed since its
   * stat was read (then one lstat of the upper).
   */
  private async node(p: MergedPath, freshStat = true): Promise<CachedNode> {
    const hit = this.cache.get(p);
    if (hit !== undefined) {
      this.trace?.resolved(p, hit.r, hit.parent?.r, true);
      return !freshStat || this.cache.statFresh(hit) ? hit : this.refreshStat(hit);
    }
    // Read before the layers are: a mutation meanwhile keeps the result out.
    const version = this.cache.version;
    const seq = this.cache.now;
    if (p === '/') {
      await this.refreshRoot();
      return this.cache.set(p, this.root, undefined, version, seq);
    }
    const parent = await this.node(parentOf(p));
    const top = winner(parent.r);
    if (top === undefined) throw fsError('ENOENT', 'lookup', parent.path);
    if (!isDir(top.stat)) throw fsError('ENOTDIR', 'lookup', parent.path);
    const r = await resolveChild(this.layers, parent.r, baseName(p));
    this.trace?.resolved(p, r, parent.r, false);
    return this.cache.set(p, r, parent, version, seq);
  }

  /** Re-reads the upper stat of a cached node whose upper object changed. */
  private async refreshStat(n: CachedNode): Promise<CachedNode> {
    const seq = this.cache.now;
    const [top, ...rest] = n.r.entries;
    let stat: Stat;
    try {
      stat = await this.layers[0].lstat(layerPath(n.path));
    } catch (err) {
      if (!hasCode(err, 'ENOENT', 'ENOTDIR')) throw err;
      // Gone behind our back (a direct change in the upper): resolve afresh.
      this.cache.drop(n.path);
      return this.node(n.path);
    }
    if ((stat.mode & S_IFMT) !== (top.stat.mode & S_IFMT)) {
      this.cache.drop(n.path);
      return this.node(n.path);
    }
    this.cache.refreshed(n, { ...n.r, entries: [{ ...top, stat }, ...rest] }, seq);
    return n;
  }

  /**
   * Names that were created, removed, renamed or copied up: their cached
   * state and everything below them goes, and their parent directories'
   * upper stat and listing are stale.
   */
  private dropNames(paths: readonly MergedPath[]): void {
    for (const p of paths) {
      this.cache.drop(p);
      this.changedParentOf(p);
    }
  }

  /** The upper directory holding p got or lost an entry: its stat and listing are stale. */
  private changedParentOf(p: MergedPath): void {
    if (p === '/') return;
    const parent = this.cache.peek(parentOf(p));
    const top = parent === undefined ? undefined : winner(parent.r);
    if (top !== undefined && top.layer === 0) this.cache.changed(top.stat);
  }

  /** An upper object's attributes or contents changed (all its names see it). */
  private changedObject(st: Stat | undefined): void {
    if (st !== undefined) this.cache.changed(st);
  }

  /**
   * Runs a namespace mutation under the lock. The names it may change are
   * dropped from the cache when it ends, whether it succeeded or not (a
   * failed rename can leave an opaque mark behind, as in the kernel).
   */
  private mutate<T>(fn: () => Promise<T>, names: readonly MergedPath[] = []): Promise<T> {
    return this.lock.run(async () => {
      try {
        return await fn();
      } finally {
        this.dropNames(names);
      }
    });
  }

  /**
   * Drops cached state after changes made behind the overlay's back (a
   * direct change in the upper directory, as Nix makes): for path, its name,
   * everything below it and its parent's listing; without a path, everything.
   * The transport is told so the kernel forgets its copies too.
   */
  invalidate(path?: string): void {
    if (path === undefined) {
      this.cache.clear();
      this.onInvalidate?.('/' as MergedPath, 'entry');
      return;
    }
    const p = mergedPath(path);
    this.cache.drop(p);
    if (p !== '/') this.cache.touch(parentOf(p));
    this.onInvalidate?.(p, 'entry');
  }

  /**
   * A name appeared in a lower layer's root (a growing Nix store): a cached
   * negative entry or root listing must not hide it.
   */
  lowerGrew(name: string): void {
    this.invalidate('/' + name);
  }

  /** The attributes shown for a resolved object. */
  statOf(r: Resolution): Stat {
    const top = winner(r);
    if (top === undefined) throw fsError('ENOENT', 'getattr', r.path);
    const ino = (top.layer === 0 ? this.stableIno.get(devIno(top.stat)) : undefined) ?? this.inodes.of(top);
    const st: Stat = { ...top.stat, ino };
    // Like the kernel: counting subdirectories of every layer is not worth it;
    // nlink 1 tells find and friends not to rely on it.
    if (isMerged(r)) st.nlink = 1;
    return st;
  }

  async getattr(path: string): Promise<Stat> {
    return this.statOf(await this.resolve(path));
  }

  /**
   * What a lookup of path finds: its attributes, or undefined when the name
   * is absent (the parent must exist: ENOENT/ENOTDIR otherwise). Absence is
   * most negative lookups' answer, given without an exception.
   */
  async lookup(path: string): Promise<Stat | undefined> {
    const r = await this.resolveMaybe(path);
    return r.entries.length === 0 ? undefined : this.statOf(r);
  }

  /** Resolves a directory: ENOENT if absent, ENOTDIR if not a directory. */
  async opendir(path: string): Promise<Resolution> {
    const r = await this.resolve(path);
    if (!isDir(winner(r)!.stat)) throw fsError('ENOTDIR', 'opendir', path);
    return r;
  }

  /** The merged listing, from the cache while the directory's upper part is unchanged. */
  async readdir(path: string): Promise<MergedDirEntry[]> {
    const p = mergedPath(path);
    const n = await this.node(p);
    if (n.r.entries.length === 0) throw fsError('ENOENT', 'readdir', p);
    if (!isDir(winner(n.r)!.stat)) throw fsError('ENOTDIR', 'readdir', p);
    if (this.cache.listingFresh(n)) return n.listing!;
    const seq = this.cache.now;
    const listing = await readMergedDir(this.layers, n.r);
    this.cache.setListing(n, listing, seq);
    return listing;
  }

  async readlink(path: string): Promise<string> {
    const r = await this.resolve(path);
    const top = winner(r)!;
    if (!isSymlink(top.stat)) throw fsError('EINVAL', 'readlink', path);
    return this.layers[top.layer].readlink(layerPath(r.path));
  }

  async access(path: string, mode: number): Promise<void> {
    const r = await this.resolve(path);
    if (mode & fsc.W_OK && this.readOnly) {
      // Permission bits are checked by the kernel (default_permissions); what
      // is left is the mount's own read-only state, which (as in the VFS) only
      // applies to files, directories and symlinks, not to devices or fifos.
      const st = winner(r)!.stat;
      if (isReg(st) || isDir(st) || isSymlink(st)) throw fsError('EROFS', 'access', path);
    }
  }

  // ---- files ---------------------------------------------------------------

  /** open(2) of an existing file; opening for write copies it up first. */
  async open(path: string, flags: number): Promise<number> {
    const p = mergedPath(path);
    if (opensForWrite(flags)) {
      const upper = this.writable('open', p);
      // The copy this open makes is its file (copyup.ts, Adopted), unless
      // it asks for flags that only a fresh open(2) gives.
      const adopt = (flags & (fsc.O_SYNC | fsc.O_DSYNC)) === 0 ? { truncate: (flags & fsc.O_TRUNC) !== 0 } : undefined;
      for (;;) {
        const copy = await this.copyUp!.ensure(p, adopt);
        if (copy !== undefined) {
          this.copies.set(p, copy);
          void copy.placed.then(() => {
            if (this.copies.get(p) === copy) this.copies.delete(p);
          });
          return this.addHandle({ file: copy.file, layer: 0, path: p, upper: copy.stat, copy, writable: true });
        }
        const r = await this.resolve(p);
        const top = winner(r)!;
        if (top.layer !== 0) continue; // replaced by a lower object meanwhile (rename): again
        if (isDir(top.stat)) throw fsError('EISDIR', 'open', p);
        const file = await upper.openFile(layerPath(p), flags & PASS_FLAGS);
        // O_TRUNC changed the file's size and times.
        if (flags & fsc.O_TRUNC) this.changedObject(top.stat);
        return this.addHandle({ file, layer: 0, path: p, upper: top.stat, writable: true });
      }
    }
    for (let again = this.cache.enabled; ; again = false) {
      const r = await this.resolve(p);
      const top = winner(r)!;
      const lp = layerPath(r.path);
      const mode = fsc.O_RDONLY | (flags & fsc.O_NONBLOCK);
      if (top.layer > 0 || this.upper === undefined) {
        // A lower file: opened on its first read (lazy-file.ts); origin notices a later copy-up.
        return this.addHandle({ file: new LazyFile(this.layers[top.layer], lp, mode), layer: top.layer, path: p, origin: entryKey(top) });
      }
      let file: LayerFile;
      try {
        file = await this.layers[top.layer].open(lp, mode);
      } catch (err) {
        // Removed behind the overlay's back (a direct change in the upper, not
        // yet invalidated): the cached resolution is wrong, so resolve afresh once.
        if (again && hasCode(err, 'ENOENT', 'ENOTDIR')) {
          this.invalidate(p);
          continue;
        }
        throw err;
      }
      return this.addHandle({ file, layer: top.layer, path: p, upper: top.stat });
    }
  }

  private addHandle(h: Handle): number {
    const fh = this.nextFh++;
    this.files.set(fh, h);
    return fh;
  }

  private handle(fh: number, op: string): Handle {
    const h = this.files.get(fh);
    if (h === undefined) throw fsError('EBADF', op);
    return h;
  }

  private upperFile(fh: number, op: string): UpperFile {
    const h = this.handle(fh, op);
    if (h.layer !== 0 || this.upper === undefined) throw fsError('EBADF', op);
    return h.file as UpperFile;
  }

  async read(fh: number, buf: Buffer, length: number, position: number): Promise<number> {
    const h = this.handle(fh, 'read');
    if (h.origin !== undefined) {
      // A copy-up of the file being committed: read what it holds once it is.
      const pending = this.copyUp?.pending(h.path);
      if (pending !== undefined) await pending;
      if (this.copiedOrigins.has(h.origin)) await this.followCopyUp(h);
    }
    let done = 0;
    // Short reads only at end of file: the kernel treats a short read as EOF.
    while (done < length) {
      const n = await h.file.read(buf, done, length - done, position + done);
      if (n === 0) break;
      done += n;
    }
    return done;
  }

  /**
   * A read-only handle opened on a lower file that has since been copied up
   * reads the upper copy from then on (as the kernel does since 4.19), so it
   * sees writes made through other handles.
   */
  private async followCopyUp(h: Handle): Promise<void> {
    h.origin = undefined;
    try {
      const r = await this.resolve(h.path);
      const top = winner(r)!;
      if (top.layer !== 0 || !isReg(top.stat)) return;
      const file = await this.upper!.openFile(layerPath(h.path), fsc.O_RDONLY);
      const old = h.file;
      h.file = file;
      h.layer = 0;
      await old.close();
    } catch (err) {
      if (!hasCode(err, 'ENOENT', 'ENOTDIR')) throw err;
    }
  }

  /** fstat(2) of an open file whose name is gone (unlinked while open). */
  async fgetattr(fh: number): Promise<Stat> {
    const h = this.handle(fh, 'fstat');
    const f = h.file as Partial<UpperFile>;
    if (typeof f.stat !== 'function') throw fsError('EBADF', 'fstat');
    const st = await f.stat();
    const ino = (h.layer === 0 ? this.stableIno.get(devIno(st)) : undefined) ?? this.inodes.of({ layer: h.layer, stat: st });
    return { ...st, ino };
  }

  /** ftruncate(2) and friends on an open file whose name is gone. */
  async fsetattr(fh: number, a: SetAttr): Promise<Stat> {
    const f = this.upperFile(fh, 'fsetattr');
    if (a.mode !== undefined || a.uid !== undefined || a.gid !== undefined || a.atime !== undefined || a.mtime !== undefined) {
      throw fsError('ENOENT', 'fsetattr');
    }
    if (a.size !== undefined) await f.truncate(a.size);
    this.changedObject(this.handle(fh, 'fsetattr').upper);
    return this.fgetattr(fh);
  }

  async write(fh: number, buf: Buffer, length: number, position: number): Promise<number> {
    const f = this.upperFile(fh, 'write');
    this.commitOk(fh, 'write');
    let done = 0;
    try {
      while (done < length) done += await f.write(buf, done, length - done, position + done);
    } finally {
      this.changedObject(this.files.get(fh)?.upper);
    }
    return done;
  }

  async fsync(fh: number, datasync: boolean): Promise<void> {
    const h = this.handle(fh, 'fsync');
    // Durable means in place, too: the copy-up's commit first.
    if (h.copy !== undefined) await h.copy.placed;
    this.commitOk(fh, 'fsync');
    if (h.layer === 0 && this.upper !== undefined) await (h.file as UpperFile).fsync(datasync);
  }

  /**
   * The attributes of the file an open handle was opened on, as shown. A
   * copy-up made by this open may not be committed yet: its path still
   * resolves to the lower object, whose attributes the copy has (no data,
   * with O_TRUNC), so they are given without waiting for the commit.
   */
  async openedStat(fh: number): Promise<Stat> {
    const h = this.handle(fh, 'fstat');
    if (h.copy === undefined) return this.getattr(h.path);
    return { ...this.statOf(await this.resolveNow(h.path)), size: h.copy.stat.size };
  }

  /** The copy of path whose commit is under way, if any. */
  private committing(p: MergedPath): Adopted | undefined {
    return this.copies.size === 0 ? undefined : this.copies.get(p);
  }

  /** EIO once the deferred commit of the copy-up that made this handle failed. */
  private commitOk(fh: number, op: string): void {
    const c = this.files.get(fh)?.copy;
    if (c?.failed !== undefined) throw fsError('EIO', op, this.files.get(fh)!.path, 'its copy-up could not be committed');
  }

  async fallocate(fh: number, mode: number, offset: number, length: number): Promise<void> {
    await this.upperFile(fh, 'fallocate').fallocate(mode, offset, length);
    this.changedObject(this.files.get(fh)?.upper);
  }

  async release(fh: number): Promise<void> {
    const h = this.handle(fh, 'release');
    this.files.delete(fh);
    if (h.bypassed && h.writable && h.upper !== undefined) this.cache.endWrites(h.upper);
    // The commit of its copy-up syncs the file: it stays open until then.
    if (h.copy !== undefined) await h.copy.placed;
    await h.file.close();
  }

  /**
   * The upper regular file behind handle fh, for a transport that can hand
   * it to the kernel (FUSE passthrough); undefined for anything else.
   * eligible: it has no set-id bits (writes that bypass the overlay could
   * not clear them, see fuse/passthrough.ts).
   */
  backingFile(fh: number): { fd: number; key: string; eligible: boolean } | undefined {
    const h = this.files.get(fh);
    if (h === undefined || h.layer !== 0 || h.upper === undefined || !isReg(h.upper)) return undefined;
    const fd = (h.file as Partial<UpperFile>).fd;
    if (fd === undefined) return undefined;
    return { fd, key: devIno(h.upper), eligible: (h.upper.mode & (S_ISUID | S_ISGID)) === 0 };
  }

  /**
   * The transport passes handle fh's reads and writes to the kernel: writes
   * bypass the overlay, so its file's cached attributes are re-read on every
   * use until the handle is released (metadata.ts, beginWrites).
   */
  bypassed(fh: number): void {
    const h = this.files.get(fh);
    if (h === undefined || h.bypassed) return;
    h.bypassed = true;
    if (h.writable && h.upper !== undefined) this.cache.beginWrites(h.upper);
  }

  get openFiles(): number {
    return this.files.size;
  }

  async statfs(path: string): Promise<StatFs> {
    await this.resolve(path);
    // The kernel reports the upper layer's filesystem, or the top lower's.
    return this.layers[0].statfs(layerPath(mergedPath('/')));
  }

  // ---- xattrs ----------------------------------------------------------------

  async getxattr(path: string, name: string): Promise<Buffer> {
    const v = await this.getxattrMaybe(path, name);
    if (v === undefined) throw fsError('ENODATA', 'getxattr', path);
    return v;
  }

  /**
   * As getxattr, but an xattr that is not set is undefined: the common
   * answer (security.capability before a first write, security.selinux for
   * ls -l), given without an exception.
   */
  async getxattrMaybe(path: string, name: string): Promise<Buffer | undefined> {
    if (isPrivateXattr(name)) return undefined;
    // The kernel asks for security.capability right after an open that
    // copied a file up, before its first write: answered from the copy,
    // without waiting for its commit.
    const copy = this.committing(mergedPath(path));
    if (copy !== undefined) {
      if (!copy.xattrs.has(name)) return undefined;
      try {
        return await this.upper!.getxattrAtMaybe(copy.loc, name);
      } catch (err) {
        if (!hasCode(err, 'ENOENT')) throw err; // committed meanwhile: look it up
      }
    }
    const r = await this.resolveLayers(path);
    const top = winner(r)!;
    return this.layers[top.layer].getxattrMaybe(layerPath(r.path), name, top.stat);
  }

  async listxattr(path: string): Promise<string[]> {
    const r = await this.resolveLayers(path);
    const top = winner(r)!;
    const names = await this.layers[top.layer].listxattr(layerPath(r.path), top.stat);
    return names.filter((n) => !isPrivateXattr(n));
  }

  async setxattr(path: string, name: string, value: Buffer, flags: number): Promise<void> {
    const p = mergedPath(path);
    // The overlay's own markers cannot be forged or removed through the mount.
    if (isPrivateXattr(name)) throw fsError('EOPNOTSUPP', 'setxattr', p);
    await this.onUpper('setxattr', p, (upper, lp) => upper.setxattr(lp, name, value, flags));
  }

  async removexattr(path: string, name: string): Promise<void> {
    const p = mergedPath(path);
    if (isPrivateXattr(name)) throw fsError('EOPNOTSUPP', 'removexattr', p);
    this.writable('removexattr', p);
    // Removing what is not there fails without a copy-up (as in the kernel).
    const r = await this.resolve(p);
    const top = winner(r)!;
    if (top.layer !== 0) await this.layers[top.layer].getxattr(layerPath(p), name);
    await this.onUpper('removexattr', p, (upper, lp) => upper.removexattr(lp, name));
  }

  // ---- attributes --------------------------------------------------------------

  async setattr(path: string, a: SetAttr, fh?: number): Promise<Stat> {
    const p = mergedPath(path);
    await this.onUpper('setattr', p, async (upper, lp, st) => {
      if (a.size !== undefined) {
        if (isDir(st)) throw fsError('EISDIR', 'truncate', p);
        const h = fh !== undefined ? this.files.get(fh) : undefined;
        if (h !== undefined && h.layer === 0) await (h.file as UpperFile).truncate(a.size);
        else await upper.truncate(lp, a.size);
      }
      if (a.uid !== undefined || a.gid !== undefined) await upper.chown(lp, a.uid ?? -1, a.gid ?? -1);
      if (a.mode !== undefined) {
        if (isSymlink(st)) throw fsError('EOPNOTSUPP', 'chmod', p);
        await upper.chmod(lp, a.mode & 0o7777);
      }
      if (a.atime !== undefined || a.mtime !== undefined) await upper.utimens(lp, a.atime ?? 'omit', a.mtime ?? 'omit');
      if (a.killSuidgid !== undefined && a.mode === undefined && isReg(st)) {
        const now = await upper.lstat(lp);
        const kill = S_ISUID | (now.mode & 0o010 || now.gid !== a.killSuidgid.gid ? S_ISGID : 0);
        if (now.mode & kill) await upper.chmod(lp, now.mode & 0o7777 & ~kill);
      }
    });
    return this.getattr(p);
  }

  /**
   * Copies the object at p up (outside the lock), then runs fn on its upper
   * copy with the lock held; retries if the path changed in between.
   */
  private async onUpper(op: string, p: MergedPath, fn: (upper: UpperLayer, lp: LayerPath, st: Stat) => Promise<void>): Promise<void> {
    const upper = this.writable(op, p);
    for (;;) {
      await this.copyUp!.ensure(p);
      const done = await this.mutate(async () => {
        const top = winner(await this.resolveNow(p))!;
        if (top.layer !== 0) return false;
        try {
          await fn(upper, layerPath(p), top.stat);
        } finally {
          this.changedObject(top.stat);
        }
        return true;
      });
      if (done) return;
    }
  }

  // ---- namespace ---------------------------------------------------------------

  async mkdir(path: string, mode: number, caller: Caller): Promise<Stat> {
    return this.createNode('mkdir', path, S_IFDIR | (mode & 0o7777), caller, (upper, loc, m) => upper.mkdir(loc, m));
  }

  async mknod(path: string, mode: number, rdev: number, caller: Caller): Promise<Stat> {
    if ((mode & S_IFMT) === S_IFDIR) throw fsError('EINVAL', 'mknod', path);
    const type = (mode & S_IFMT) === 0 ? S_IFREG : mode & S_IFMT;
    return this.createNode('mknod', path, type | (mode & 0o7777), caller, (upper, loc, m) => upper.mknod(loc, type | m, rdev));
  }

  async symlink(target: string, path: string, caller: Caller): Promise<Stat> {
    return this.createNode('symlink', path, S_IFLNK | 0o777, caller, (upper, loc) => upper.symlink(target, loc));
  }

  /** The layer an open file handle reads from (0: upper), for tracing. */
  handleLayer(fh: number): number | undefined {
    return this.files.get(fh)?.layer;
  }

  /** create(2): a new regular file, opened. */
  async create(path: string, flags: number, mode: number, caller: Caller): Promise<{ fh: number; stat: Stat }> {
    let file: UpperFile | undefined;
    try {
      const stat = await this.createNode('create', path, S_IFREG | (mode & 0o7777), caller, async (upper, loc, m) => {
        file = await upper.openFile(loc, fsc.O_CREAT | fsc.O_EXCL | fsc.O_RDWR, m);
      });
      const p = mergedPath(path);
      const fh = this.addHandle({ file: file!, layer: 0, path: p, upper: winner(await this.resolve(p))!.stat, writable: true });
      return { fh, stat };
    } catch (err) {
      await file?.close().catch(() => undefined);
      if (hasCode(err, 'EEXIST') && !(flags & fsc.O_EXCL)) {
        // Lost a race with another creator: open what is there, as open(2) would.
        return { fh: await this.open(path, flags & ~fsc.O_CREAT), stat: await this.getattr(path) };
      }
      throw err;
    }
  }

  /**
   * Creates a new object at path. make() is given where and with which mode
   * (applied exactly, whatever the umask). Where the new object would get the
   * wrong owner or must replace an upper whiteout, it is built in the work
   * directory, given its owner and mode there, then renamed into place: no
   * one sees it half made. Over a whiteout in the upper layer the rename
   * replaces it, and a directory made there becomes opaque (the kernel's
   * rule), so lower content of the old name stays hidden.
   */
  private async createNode(
    op: string,
    path: string,
    mode: number,
    caller: Caller,
    make: (upper: UpperLayer, loc: Loc, mode: number) => Promise<void>,
  ): Promise<Stat> {
    const p = mergedPath(path);
    const upper = this.writable(op, p);
    const name = baseName(p);
    if (isWhiteoutName(name)) throw fsError('EPERM', op, p, `names starting with '.wh.' are reserved`);
    await this.mutate(async () => {
      const parent = await this.parentDirLocked(op, p);
      const existing = await resolveChild(this.layers, parent, name);
      this.trace?.resolved(p, existing, parent, false);
      if (existing.entries.length > 0) throw fsError('EEXIST', op, p);
      const pst = winner(parent)!.stat;
      const setgidDir = (pst.mode & S_ISGID) !== 0;
      const dir = (mode & S_IFMT) === S_IFDIR;
      const gid = setgidDir ? pst.gid : caller.gid;
      const symlink = (mode & S_IFMT) === S_IFLNK;
      // A set-gid parent's bit is inherited by mkdir(2) itself; given here
      // too so that a chmod (restoring umask bits, or below) keeps it.
      const finalMode = (mode & 0o7777) | (dir && setgidDir ? S_ISGID : 0);
      const ownerIsOurs = !this.privileged || (caller.uid === this.ownUid && (setgidDir || caller.gid === this.ownGid));
      if (this.upperWhiteout(existing) === undefined && ownerIsOurs) {
        // Nothing to replace, and the upper filesystem itself gives the new
        // object the owner it must have (ours; the group of a set-gid parent
        // by the same rule): created in place, as kernel overlayfs's
        // ovl_create_upper does, without the work directory and rename.
        const lp = layerPath(p);
        await make(upper, lp, finalMode);
        // open(2)/mknod(2) honour set-id bits only sometimes (mkdir never):
        // what the caller asked for is set explicitly, as below.
        if (!symlink && !dir && (mode & (S_ISUID | S_ISGID)) !== 0) await upper.chmod(lp, mode & 0o7777);
        return;
      }
      await this.place(p, existing, dir, async (loc) => {
        await make(upper, loc, dir ? 0o700 : 0o600);
        if (this.privileged) await upper.chown(loc, caller.uid, gid);
        // After chown, which clears set-id bits; umask was applied by the kernel.
        if (!symlink) await upper.chmod(loc, finalMode);
      });
    }, [p]);
    return this.getattr(p);
  }

  /**
   * The form of the whiteout the upper layer itself has at a name that
   * resolved absent, if any. An OCI ".wh." marker is reported as 'wh-file':
   * it is a separate file, so it is not replaced by a rename.
   */
  private upperWhiteout(r: Resolution): WhiteoutForm | undefined {
    return r.stop?.kind === 'whiteout' && r.stop.layer === 0 ? r.stop.form : undefined;
  }

  /**
   * Renames a prepared work object into the upper at p. `existing` is the
   * merged resolution of the name, which must be absent in the merged view.
   */
  private async place(p: MergedPath, existing: Resolution, dir: boolean, build: (loc: Loc) => Promise<void>): Promise<void> {
    const upper = this.upper!;
    const lp = layerPath(p);
    const whiteout = this.upperWhiteout(existing);
    const overWhiteout = whiteout !== undefined && whiteout !== 'wh-file';
    const tmp = { work: this.tmpName() };
    let inWork = true;
    try {
      await build(tmp);
      if (dir && overWhiteout) {
        await this.markers!.setOpaque(tmp);
        this.trace?.marker(p, 'opaque', this.markers!.opaqueXattr);
      }
      if (!overWhiteout) {
        await upper.rename(tmp, lp, RENAME_NOREPLACE);
        inWork = false;
      } else if (!dir) {
        await upper.rename(tmp, lp, 0); // atomically replaces the whiteout
        inWork = false;
      } else {
        // rename(2) cannot put a directory over a non-directory: swap, then
        // drop the whiteout, which is now in the work directory.
        await upper.rename(tmp, lp, RENAME_EXCHANGE);
      }
    } finally {
      if (inWork) await upper.rmtree(tmp).catch(() => undefined);
    }
    if (whiteout === 'wh-file') {
      // An OCI marker in the upper: the kernel cannot read it, so a directory
      // put here is made opaque in its form, and the marker goes.
      if (dir) await this.markers!.setOpaque(lp);
      await upper.unlink(layerChild(layerPath(parentOf(p)), WHITEOUT_PREFIX + baseName(p))).catch(() => undefined);
    }
  }

  async link(from: string, to: string): Promise<Stat> {
    const src = mergedPath(from);
    const dst = mergedPath(to);
    const upper = this.writable('link', dst);
    const name = baseName(dst);
    if (isWhiteoutName(name)) throw fsError('EPERM', 'link', dst, `names starting with '.wh.' are reserved`);
    for (;;) {
      const s = winner(await this.resolve(src))!;
      if (isDir(s.stat)) throw fsError('EPERM', 'link', src);
      // Checked before the copy-up too: a failed link copies nothing up.
      if ((await this.resolveMaybe(dst)).entries.length > 0) throw fsError('EEXIST', 'link', dst);
      await this.copyUp!.ensure(src);
      const done = await this.mutate(async () => {
        const top = winner(await this.resolveNow(src))!;
        if (top.layer !== 0) return false;
        const parent = await this.parentDirLocked('link', dst);
        const existing = await resolveChild(this.layers, parent, name);
        if (existing.entries.length > 0) throw fsError('EEXIST', 'link', dst);
        try {
          await this.place(dst, existing, false, (loc) => upper.link(layerPath(src), loc));
        } finally {
          this.changedObject(top.stat); // nlink and ctime, under every name
        }
        return true;
      }, [dst]);
      if (done) return this.getattr(dst);
    }
  }

  async unlink(path: string): Promise<void> {
    await this.remove('unlink', mergedPath(path), false);
  }

  async rmdir(path: string): Promise<void> {
    await this.remove('rmdir', mergedPath(path), true);
  }

  /**
   * unlink/rmdir: the upper part goes, and a whiteout takes its place when a
   * lower layer still has the name. A directory must be empty in the merged
   * view; its upper copy may still hold whiteouts, so it is swapped with the
   * new whiteout (or moved to the work directory) in one rename and removed
   * there.
   */
  private async remove(op: 'unlink' | 'rmdir', p: MergedPath, dir: boolean): Promise<void> {
    const upper = this.writable(op, p);
    if (p === '/') throw fsError('EBUSY', op, p);
    await this.mutate(async () => {
      const parent = await this.parentDirLocked(op, p);
      const name = baseName(p);
      const r = await resolveChild(this.layers, parent, name);
      this.trace?.resolved(p, r, parent, false);
      const top = winner(r);
      if (top === undefined) throw fsError('ENOENT', op, p);
      if (dir && !isDir(top.stat)) throw fsError('ENOTDIR', op, p);
      if (!dir && isDir(top.stat)) throw fsError('EISDIR', op, p);
      // Other names of an upper file see its nlink drop.
      if (!dir && top.layer === 0) this.changedObject(top.stat);
      const lp = layerPath(p);
      // Found only in lower layers: a lower layer has it, no need to look again.
      const lowerHas = top.layer !== 0 || (await this.lowerHas(parent, name));
      // The kernel leaves a pure-upper directory's removal to the upper
      // filesystem (vfs_rmdir), so a stale whiteout in it makes it not empty;
      // any other directory must be empty in the merged view, and its
      // whiteouts go with it.
      const pure = dir && !lowerHas && this.isPureUpperDir(r);
      if (pure) {
        await upper.rmdir(lp);
        return;
      }
      if (dir && (await readMergedDir(this.layers, r)).length > 0) throw fsError('ENOTEMPTY', op, p);
      if (top.layer !== 0) {
        // Only in lower layers: hide it.
        await this.makeWhiteout(lp, parent);
        this.trace?.marker(p, 'whiteout', this.markers!.config.whiteout);
        return;
      }
      if (lowerHas) {
        const tmp = { work: this.tmpName() };
        await this.makeWhiteout(tmp, parent);
        this.trace?.marker(p, 'whiteout', this.markers!.config.whiteout);
        if (dir) {
          await upper.rename(tmp, lp, RENAME_EXCHANGE);
          await upper.rmtree(tmp);
        } else {
          await upper.rename(tmp, lp, 0);
        }
        return;
      }
      if (!dir) {
        await upper.unlink(lp);
        return;
      }
      try {
        await upper.rmdir(lp);
      } catch (err) {
        if (!hasCode(err, 'ENOTEMPTY', 'EEXIST')) throw err;
        // Holds only markers: move it out in one step, then clear it.
        const tmp = { work: this.tmpName() };
        await upper.rename(lp, tmp, 0);
        await upper.rmtree(tmp);
      }
    }, [p]);
  }

  /**
   * A whiteout for a name in parent. In the fallback form the parent becomes
   * opaque=x (marks.makeWhiteout), which changes how its children resolve:
   * its cached markers are re-read (its other children stay cached, their
   * resolution does not change).
   */
  private async makeWhiteout(loc: Loc, parent: Resolution): Promise<void> {
    const parentLp = layerPath(parent.path);
    try {
      await this.markers!.makeWhiteout(loc, parentLp);
    } finally {
      if (this.markers!.config.whiteout !== 'chardev') await this.refreshMarkers(parent.path);
    }
  }

  private async refreshMarkers(dir: MergedPath): Promise<void> {
    const n = this.cache.peek(dir);
    if (n === undefined || n.dead) return;
    const [top, ...rest] = n.r.entries;
    if (top === undefined || top.layer !== 0) {
      this.cache.drop(dir);
      return;
    }
    const markers = await readDirMarkers(this.upper!, layerPath(dir));
    n.r = { ...n.r, entries: [{ ...top, markers: dir === '/' ? { xwhiteouts: markers.xwhiteouts } : markers }, ...rest] };
  }

  /**
   * rename(2)/renameat2(2). Files are copied up and renamed in the upper
   * layer; a whiteout is left at the old name when a lower layer still has it.
   * A directory with lower content cannot move without redirects: EXDEV, as
   * in the kernel without redirect_dir (mv then copies).
   */
  async rename(from: string, to: string, flags: number): Promise<void> {
    const src = mergedPath(from);
    const dst = mergedPath(to);
    const upper = this.writable('rename', src);
    if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE) || (flags & RENAME_NOREPLACE && flags & RENAME_EXCHANGE)) {
      throw fsError('EINVAL', 'rename', src);
    }
    const exchange = (flags & RENAME_EXCHANGE) !== 0;
    if (isWhiteoutName(baseName(dst)) || (exchange && isWhiteoutName(baseName(src)))) {
      throw fsError('EPERM', 'rename', dst, `names starting with '.wh.' are reserved`);
    }
    if (src === '/' || dst === '/') throw fsError('EBUSY', 'rename', src);
    for (;;) {
      // Every check that can fail comes before any copy-up (a failed rename
      // changes nothing, as in the kernel); the locked part checks again.
      const c = await this.renameChecks(src, dst, flags, false);
      if (c === 'same') return;
      if (!c.sDir) await this.copyUp!.ensure(src);
      if (exchange && !c.dDir) await this.copyUp!.ensure(dst);
      const done = await this.mutate(() => this.renameLocked(upper, src, dst, flags), [src, dst]);
      if (done) return;
    }
  }

  /**
   * The checks of rename(2) in the kernel's order, on the merged view and
   * without changing anything: the VFS's (ENOENT, ENOTDIR, EISDIR, EEXIST
   * for RENAME_NOREPLACE, EINVAL for a directory moved under itself), then
   * overlayfs's own before its copy-ups (EXDEV for a directory with lower
   * content, ENOTEMPTY for a target directory that is not pure upper).
   * 'same' when both names are one object: rename(2) then does nothing.
   */
  private async renameChecks(src: MergedPath, dst: MergedPath, flags: number, locked: boolean): Promise<'same' | { sDir: boolean; dDir: boolean }> {
    const exchange = (flags & RENAME_EXCHANGE) !== 0;
    // Under the lock a copy-up commit cannot be waited for (it needs the
    // lock): the target of a pending one is seen as its lower file, and if
    // the rename replaces it, the commit drops its copy.
    const rs = locked ? await this.resolveNow(src) : await this.resolve(src);
    const rd = locked ? await this.resolveNow(dst, true) : await this.resolveMaybe(dst);
    const s = winner(rs)!;
    const d = winner(rd);
    if (exchange && d === undefined) throw fsError('ENOENT', 'rename', dst);
    const sDir = isDir(s.stat);
    const dDir = d !== undefined && isDir(d.stat);
    if (src === dst) return 'same';
    if (flags & RENAME_NOREPLACE && d !== undefined) throw fsError('EEXIST', 'rename', dst);
    if (!exchange && d !== undefined) {
      if (sDir && !dDir) throw fsError('ENOTDIR', 'rename', dst);
      if (!sDir && dDir) throw fsError('EISDIR', 'rename', dst);
    }
    if ((sDir && dst.startsWith(`${src}/`)) || (exchange && dDir && src.startsWith(`${dst}/`))) {
      throw fsError('EINVAL', 'rename', src);
    }
    if (sDir && rs.entries.some((e) => e.layer !== 0)) throw fsError('EXDEV', 'rename', src);
    if (exchange && dDir && rd.entries.some((e) => e.layer !== 0)) throw fsError('EXDEV', 'rename', dst);
    // A pure-upper target directory is left to the upper filesystem's
    // rename, which refuses it (ENOTEMPTY) while it holds anything, stale
    // whiteouts included, exactly as under the kernel, side effects of the
    // failed rename included (ext4 touches the source directory's times when
    // it undoes RENAME_WHITEOUT). Any other must be empty in the merged view.
    if (!exchange && dDir && !this.isPureUpperDir(rd) && (await readMergedDir(this.layers, rd)).length > 0) {
      throw fsError('ENOTEMPTY', 'rename', dst);
    }
    // Two names of one upper file (hard links): nothing to do either.
    if (!exchange && !dDir && d !== undefined && d.layer === 0 && s.layer === 0 && d.stat.ino === s.stat.ino && d.stat.dev === s.stat.dev) {
      return 'same';
    }
    return { sDir, dDir };
  }

  private async renameLocked(upper: UpperLayer, src: MergedPath, dst: MergedPath, flags: number): Promise<boolean> {
    const exchange = (flags & RENAME_EXCHANGE) !== 0;
    const c = await this.renameChecks(src, dst, flags, true);
    if (c === 'same') return true;
    const { sDir, dDir } = c;
    const sParent = await this.parentDirLocked('rename', src);
    const dParent = await this.parentDirLocked('rename', dst);
    const sName = baseName(src);
    const rs = await resolveChild(this.layers, sParent, sName);
    const rd = await resolveChild(this.layers, dParent, baseName(dst));
    this.trace?.resolved(src, rs, sParent, false);
    const s = winner(rs);
    const d = winner(rd);
    // Copied up outside the lock; if that raced with another change, again.
    if (s === undefined || isDir(s.stat) !== sDir || (!sDir && s.layer !== 0)) return false;
    if (exchange && (d === undefined || isDir(d.stat) !== dDir || (!dDir && d.layer !== 0))) return false;
    const sLp = layerPath(src);
    const dLp = layerPath(dst);
    // ctime of the moved objects, nlink of a replaced file's other names.
    if (!sDir) this.changedObject(s.stat);
    if (d !== undefined && d.layer === 0 && !isDir(d.stat)) this.changedObject(d.stat);

    if (exchange) {
      await upper.rename(sLp, dLp, RENAME_EXCHANGE);
      // As for rename: a directory arriving in a merged directory becomes opaque.
      if (sDir && isMerged(dParent)) await this.markers!.setOpaque(dLp);
      if (dDir && isMerged(sParent)) await this.markers!.setOpaque(sLp);
      return true;
    }

    const dWhiteout = d === undefined ? this.upperWhiteout(rd) : undefined;
    const dOverWhiteout = dWhiteout !== undefined && dWhiteout !== 'wh-file';
    const sNeedsWhiteout = await this.lowerHas(sParent, sName);
    // The kernel's rule: a directory moved into a merged directory is made
    // opaque, so that whatever lower layers have (or later get) at its new
    // name never merges into it. The kernel does this before the upper
    // rename, so it stays even when that rename then fails.
    if (sDir && isMerged(dParent)) {
      await this.markers!.setOpaque(sLp);
      this.trace?.marker(dst, 'opaque', this.markers!.opaqueXattr);
    }
    if (dDir && !this.isPureUpperDir(rd) && d!.layer === 0) await this.emptyUpperDir(dLp);
    if (dOverWhiteout && sDir) {
      // A directory cannot replace a non-directory: swap with the whiteout,
      // which then sits at the old name, where it is kept if needed.
      await upper.rename(sLp, dLp, RENAME_EXCHANGE);
      if (!sNeedsWhiteout) await upper.unlink(sLp);
      return true;
    }
    if (!sNeedsWhiteout) {
      await upper.rename(sLp, dLp, 0);
      return true;
    }
    if (this.markers!.config.whiteout === 'chardev') {
      await upper.rename(sLp, dLp, RENAME_WHITEOUT);
    } else {
      await upper.rename(sLp, dLp, 0);
      await this.makeWhiteout(sLp, sParent);
    }
    this.trace?.marker(src, 'whiteout', this.markers!.config.whiteout);
    return true;
  }

  /**
   * A directory the kernel calls "pure upper" (ovl_pure_upper): only in the
   * upper layer and without an origin, i.e. never merged, so it cannot hold
   * whiteouts that matter. The kernel leaves removing or replacing it to the
   * upper filesystem, which counts stale whiteouts as entries.
   */
  private isPureUpperDir(r: Resolution): boolean {
    return this.upper !== undefined && r.entries.length === 1 && r.entries[0].layer === 0 && !r.entries[0].markers?.origin;
  }

  /**
   * Makes an upper directory that is empty in the merged view (it may hold
   * whiteouts) really empty, in one step: an empty opaque directory is
   * swapped in and the old one removed from the work directory.
   */
  private async emptyUpperDir(lp: LayerPath): Promise<void> {
    const upper = this.upper!;
    if ((await upper.readdir(lp)).length === 0) return;
    const st = await upper.lstat(lp);
    const tmp = { work: this.tmpName() };
    await upper.mkdir(tmp, 0o700);
    try {
      if (this.privileged) await upper.chown(tmp, st.uid, st.gid);
      await upper.chmod(tmp, st.mode & 0o7777);
      await this.markers!.setOpaque(tmp);
      await upper.rename(tmp, lp, RENAME_EXCHANGE);
    } finally {
      await upper.rmtree(tmp);
    }
  }

  /**
   * Whether a lower layer under `parent` has `name` (a whiteout at the name
   * would hide it again, so a new whiteout is needed exactly then). The
   * kernel's ovl_lower_positive().
   */
  private async lowerHas(parent: Resolution, name: string): Promise<boolean> {
    const lowers = parent.entries.filter((e) => e.layer !== 0);
    if (lowers.length === 0) return false;
    const r = await resolveChild(this.layers, { ...parent, entries: lowers }, name);
    return r.entries.length > 0;
  }

  /**
   * The parent directory of p, copied up (with its own parents). Lock held.
   * ENOENT/ENOTDIR when it is missing or not a directory.
   */
  private async parentDirLocked(op: string, p: MergedPath): Promise<Resolution> {
    const parent = parentOf(p);
    await this.resolveNow(parent); // ENOENT / ENOTDIR for the path itself
    const r = await this.copyUp!.dirsLocked(parent);
    const top = winner(r);
    if (top === undefined) throw fsError('ENOENT', op, p);
    if (!isDir(top.stat)) throw fsError('ENOTDIR', op, p);
    return r;
  }

  /** The upper layer, or EROFS on a read-only mount. */
  private writable(op: string, path: string): UpperLayer {
    if (this.upper === undefined) throw fsError('EROFS', op, path);
    return this.upper;
  }

  /** Closes every open file (at unmount), once every copy-up under way is in place. */
  async close(): Promise<void> {
    await this.copyUp?.settle();
    const files = [...this.files.values()];
    this.files.clear();
    await Promise.allSettled(files.map((f) => f.file.close()));
  }
}
