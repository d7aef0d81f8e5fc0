// The overlay: the facade that owns the layers and all per-mount state, and
// answers filesystem operations on merged paths. Transports (src/fuse) call
// these methods and map thrown FsErrors to errnos; nothing here knows FUSE.
//
// This is the read path. Every operation that would modify the merged view
// throws EROFS: a mount is read-only when it has no upper layer, and until the
// write path exists (copy-up, whiteout and opaque writing) every mount is
// served read-only; see docs/DESIGN.md.
import { constants as fsc } from 'fs';
import { fsError } from './errors';
import { InodeNumbers } from './inode';
import type { Layer, LayerFile } from './layer';
import { isMerged, resolvePath, resolveRoot, winner, type Resolution } from './lookup';
import { layerPath, mergedPath } from './paths';
import { readMergedDir, type MergedDirEntry } from './readdir';
import { isDir, isReg, isSymlink, type Stat, type StatFs } from './stat';
import { isPrivateXattr } from './whiteout';

export interface OverlayConfig {
  /** Layers top-down: the upper (if any) first, then lowerdir in mount order. */
  layers: Layer[];
  /** Display names, same order ("upper", "lower1", ...). */
  layerNames: string[];
  hasUpper: boolean;
}

/** The write flags of open(2) that would modify the file. */
const WRITE_OPEN = fsc.O_WRONLY | fsc.O_RDWR | fsc.O_TRUNC | fsc.O_APPEND | fsc.O_CREAT;

export class Overlay {
  readonly layers: readonly Layer[];
  readonly layerNames: readonly string[];
  readonly readOnly = true;
  private inodes!: InodeNumbers;
  private root!: Resolution;
  private readonly files = new Map<number, LayerFile>();
  private nextFh = 1;

  private constructor(cfg: OverlayConfig) {
    this.layers = cfg.layers;
    this.layerNames = cfg.layerNames;
  }

  /** Opens the overlay: every layer root must be a readable directory. */
  static async open(cfg: OverlayConfig): Promise<Overlay> {
    if (cfg.layers.length === 0) throw fsError('EINVAL', 'mount', undefined, 'no layers');
    const ov = new Overlay(cfg);
    await ov.refreshRoot();
    ov.inodes = new InodeNumbers(ov.root.entries.map((e) => e.stat.dev));
    return ov;
  }

  private async refreshRoot(): Promise<void> {
    this.root = await resolveRoot(this.layers);
    for (const e of this.root.entries) {
      if (!isDir(e.stat)) throw fsError('ENOTDIR', 'mount', this.layers[e.layer].root);
    }
  }

  get samefs(): boolean {
    return this.inodes.samefs;
  }

  /** Resolves a merged path; absent final components throw ENOENT. */
  async resolve(path: string): Promise<Resolution> {
    const p = mergedPath(path);
    if (p === '/') {
      await this.refreshRoot();
      return this.root;
    }
    return resolvePath(this.layers, this.root, p);
  }

  /** Like resolve, but an absent final component gives an empty resolution. */
  async resolveMaybe(path: string): Promise<Resolution> {
    return resolvePath(this.layers, this.root, mergedPath(path), true);
  }

  /** The attributes shown for a resolved object. */
  statOf(r: Resolution): Stat {
    const top = winner(r);
    if (top === undefined) throw fsError('ENOENT', 'getattr', r.path);
    const st: Stat = { ...top.stat, ino: this.inodes.of(top) };
    // Like the kernel: counting subdirectories of every layer is not worth it;
    // nlink 1 tells find and friends not to rely on it.
    if (isMerged(r)) st.nlink = 1;
    return st;
  }

  async getattr(path: string): Promise<Stat> {
    return this.statOf(await this.resolve(path));
  }

  /** Resolves a directory: ENOENT if absent, ENOTDIR if not a directory. */
  async opendir(path: string): Promise<Resolution> {
    const r = await this.resolve(path);
    if (!isDir(winner(r)!.stat)) throw fsError('ENOTDIR', 'opendir', path);
    return r;
  }

  async readdir(path: string): Promise<MergedDirEntry[]> {
    return readMergedDir(this.layers, await this.opendir(path));
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

  async open(path: string, flags: number): Promise<number> {
    if (flags & WRITE_OPEN) this.refuseWrite('open', path);
    const r = await this.resolve(path);
    const top = winner(r)!;
    const file = await this.layers[top.layer].open(layerPath(r.path), fsc.O_RDONLY | (flags & fsc.O_NONBLOCK));
    const fh = this.nextFh++;
    this.files.set(fh, file);
    return fh;
  }

  async read(fh: number, buf: Buffer, length: number, position: number): Promise<number> {
    const file = this.files.get(fh);
    if (file === undefined) throw fsError('EBADF', 'read');
    let done = 0;
    // Short reads only at end of file: the kernel treats a short read as EOF.
    while (done < length) {
      const n = await file.read(buf, done, length - done, position + done);
      if (n === 0) break;
      done += n;
    }
    return done;
  }

  async release(fh: number): Promise<void> {
    const file = this.files.get(fh);
    if (file === undefined) throw fsError('EBADF', 'release');
    this.files.delete(fh);
    await file.close();
  }

  get openFiles(): number {
    return this.files.size;
  }

  async statfs(path: string): Promise<StatFs> {
    await this.resolve(path);
    // The kernel reports the upper layer's filesystem, or the top lower's.
    return this.layers[0].statfs(layerPath(mergedPath('/')));
  }

  async getxattr(path: string, name: string): Promise<Buffer> {
    if (isPrivateXattr(name)) throw fsError('ENODATA', 'getxattr', path);
    const r = await this.resolve(path);
    const top = winner(r)!;
    return this.layers[top.layer].getxattr(layerPath(r.path), name);
  }

  async listxattr(path: string): Promise<string[]> {
    const r = await this.resolve(path);
    const top = winner(r)!;
    const names = await this.layers[top.layer].listxattr(layerPath(r.path));
    return names.filter((n) => !isPrivateXattr(n));
  }

  /** The answer to every modifying operation on a read-only mount. */
  refuseWrite(op: string, path: string): never {
    throw fsError('EROFS', op, path);
  }

  /** Closes every open file (at unmount). */
  async close(): Promise<void> {
    const files = [...this.files.values()];
    this.files.clear();
    await Promise.allSettled(files.map((f) => f.close()));
  }
}
