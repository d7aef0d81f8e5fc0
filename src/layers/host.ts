// HostLayer: a Layer over a directory of the host filesystem. Paths are
// relative to the layer root and joined as strings; the overlay only asks for
// children of entries it has seen to be real directories in this layer, so no
// symlink inside the layer is followed (see core/layer.ts).
// xattrs go through the native addon (lgetxattr & co. are fast, synchronous
// metadata calls); everything else through Node's asynchronous fs.
import { promises as fsp, type BigIntStats, type Dirent } from 'fs';
import { constants as fsc } from 'fs';
import { asFsError, hasCode } from '../core/errors';
import type { DirEntry, Layer, LayerFile, Loc, SeekableFile, TimeSpec, UpperFile, UpperLayer } from '../core/layer';
import type { LayerPath } from '../core/paths';
import { devMajor, devMinor, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK, type Stat, type StatFs } from '../core/stat';
import { native } from '../native';

export function statFromNode(s: BigIntStats): Stat {
  return {
    dev: s.dev,
    ino: s.ino,
    mode: Number(s.mode),
    nlink: Number(s.nlink),
    uid: Number(s.uid),
    gid: Number(s.gid),
    rdev: Number(s.rdev),
    size: Number(s.size),
    blocks: Number(s.blocks),
    blksize: Number(s.blksize),
    atimeNs: s.atimeNs,
    mtimeNs: s.mtimeNs,
    ctimeNs: s.ctimeNs,
  };
}

function direntType(d: Dirent): number {
  if (d.isFile()) return S_IFREG;
  if (d.isDirectory()) return S_IFDIR;
  if (d.isSymbolicLink()) return S_IFLNK;
  if (d.isCharacterDevice()) return S_IFCHR;
  if (d.isBlockDevice()) return S_IFBLK;
  if (d.isFIFO()) return S_IFIFO;
  if (d.isSocket()) return S_IFSOCK;
  return 0;
}

/** Calls a synchronous native function, turning its error into an FsError. */
function sys<T>(syscall: string, path: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw asFsError(err, syscall, path);
  }
}

/**
 * System calls made on one layer's files, by name. Counted where they are
 * made, so a workload's cost on a (possibly slow, or network) lower layer can
 * be measured, and "a hot lookup touches no lower layer" checked.
 */
export class SyscallCounts {
  private readonly n = new Map<string, number>();
  add(syscall: string): void {
    this.n.set(syscall, (this.n.get(syscall) ?? 0) + 1);
  }
  /** A copy of the counts so far, by system call name. */
  snapshot(): Record<string, number> {
    return Object.fromEntries(this.n);
  }
  get total(): number {
    let t = 0;
    for (const v of this.n.values()) t += v;
    return t;
  }
}

class HostFile implements SeekableFile, UpperFile {
  constructor(
    private readonly fh: fsp.FileHandle,
    private readonly calls: SyscallCounts,
  ) {}
  async read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    this.calls.add('pread');
    const { bytesRead } = await this.fh.read(buf, offset, length, position);
    return bytesRead;
  }
  async write(buf: Buffer, offset: number, length: number, position: number | null): Promise<number> {
    this.calls.add('pwrite');
    const { bytesWritten } = await this.fh.write(buf, offset, length, position);
    return bytesWritten;
  }
  fsync(datasync: boolean): Promise<void> {
    return datasync ? this.fh.datasync() : this.fh.sync();
  }
  truncate(size: number): Promise<void> {
    return this.fh.truncate(size);
  }
  async fallocate(mode: number, offset: number, length: number): Promise<void> {
    sys('fallocate', '', () => native().fallocate(this.fh.fd, mode, offset, length));
  }
  async stat(): Promise<Stat> {
    return statFromNode(await this.fh.stat({ bigint: true }));
  }
  nextData(pos: number): number | null {
    this.calls.add('lseek');
    try {
      return native().lseek(this.fh.fd, pos, native().SEEK_DATA);
    } catch (err) {
      if (hasCode(err, 'ENXIO')) return null;
      throw asFsError(err, 'lseek');
    }
  }
  nextHole(pos: number): number {
    this.calls.add('lseek');
    return sys('lseek', '', () => native().lseek(this.fh.fd, pos, native().SEEK_HOLE));
  }
  close(): Promise<void> {
    this.calls.add('close');
    return this.fh.close();
  }
}

/** Splits nanoseconds into the (seconds, nanoseconds) pair utimensat takes. */
function timespec(t: TimeSpec): [number, number] {
  const n = native();
  if (t === 'now') return [0, n.UTIME_NOW];
  if (t === 'omit') return [0, n.UTIME_OMIT];
  let sec = t / 1000000000n;
  let nsec = t % 1000000000n;
  if (nsec < 0n) {
    sec -= 1n;
    nsec += 1000000000n;
  }
  return [Number(sec), Number(nsec)];
}

export class HostLayer implements Layer {
  /** The system calls this layer made on its files (reads, lookups, listings). */
  readonly calls = new SyscallCounts();

  constructor(readonly root: string) {}

  /** The host path of a layer path. */
  hostPath(p: LayerPath): string {
    return p === '' ? this.root : `${this.root}/${p}`;
  }

  async lstat(p: LayerPath): Promise<Stat> {
    this.calls.add('lstat');
    return statFromNode(await fsp.lstat(this.hostPath(p), { bigint: true }));
  }

  async readdir(p: LayerPath): Promise<DirEntry[]> {
    this.calls.add('readdir');
    const ents = await fsp.readdir(this.hostPath(p), { withFileTypes: true });
    return ents.map((d) => ({ name: d.name, type: direntType(d) }));
  }

  readlink(p: LayerPath): Promise<string> {
    this.calls.add('readlink');
    return fsp.readlink(this.hostPath(p));
  }

  async getxattr(p: LayerPath, name: string): Promise<Buffer> {
    this.calls.add('lgetxattr');
    try {
      return native().lgetxattr(this.hostPath(p), name);
    } catch (err) {
      throw asFsError(err, 'lgetxattr', this.hostPath(p));
    }
  }

  async listxattr(p: LayerPath): Promise<string[]> {
    this.calls.add('llistxattr');
    try {
      return native().llistxattr(this.hostPath(p));
    } catch (err) {
      throw asFsError(err, 'llistxattr', this.hostPath(p));
    }
  }

  async open(p: LayerPath, flags: number): Promise<LayerFile> {
    this.calls.add('open');
    return new HostFile(await fsp.open(this.hostPath(p), flags), this.calls);
  }

  async statfs(p: LayerPath): Promise<StatFs> {
    this.calls.add('statfs');
    const s = await fsp.statfs(this.hostPath(p));
    return {
      type: s.type,
      bsize: s.bsize,
      blocks: s.blocks,
      bfree: s.bfree,
      bavail: s.bavail,
      files: s.files,
      ffree: s.ffree,
      namemax: 255,
    };
  }
}

/**
 * The upper directory and its work directory. Work names live in
 * workdir/work, the directory the kernel uses for the same purpose, so a
 * kernel mount of the same layers finds its work directory where it expects.
 */
export class HostUpperLayer extends HostLayer implements UpperLayer {
  constructor(
    root: string,
    readonly workRoot: string,
  ) {
    super(root);
  }

  at(loc: Loc): string {
    return typeof loc === 'string' ? this.hostPath(loc) : `${this.workRoot}/${loc.work}`;
  }

  async lstatAt(loc: Loc): Promise<Stat> {
    return statFromNode(await fsp.lstat(this.at(loc), { bigint: true }));
  }
  async mkdir(loc: Loc, mode: number): Promise<void> {
    await fsp.mkdir(this.at(loc), { mode });
  }
  async mknod(loc: Loc, mode: number, rdev: number): Promise<void> {
    const p = this.at(loc);
    if ((mode & 0o170000) === 0o100000) {
      // A regular file: mknod(2) would do, but open(2) works where mknod is refused.
      await (await fsp.open(p, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY, mode & 0o7777)).close();
      return;
    }
    sys('mknod', p, () => native().mknod(p, mode, devMajor(rdev), devMinor(rdev)));
  }
  async symlink(target: string, loc: Loc): Promise<void> {
    await fsp.symlink(target, this.at(loc));
  }
  async link(from: Loc, to: Loc): Promise<void> {
    await fsp.link(this.at(from), this.at(to));
  }
  async unlink(loc: Loc): Promise<void> {
    await fsp.unlink(this.at(loc));
  }
  async rmdir(loc: Loc): Promise<void> {
    await fsp.rmdir(this.at(loc));
  }
  async rmtree(loc: Loc): Promise<void> {
    await fsp.rm(this.at(loc), { recursive: true, force: true });
  }
  async rename(from: Loc, to: Loc, flags: number): Promise<void> {
    const a = this.at(from);
    const b = this.at(to);
    if (flags === 0) {
      await fsp.rename(a, b);
      return;
    }
    sys('renameat2', a, () => native().renameat2(a, b, flags));
  }
  async setxattr(loc: Loc, name: string, value: Buffer, flags: number): Promise<void> {
    const p = this.at(loc);
    sys('lsetxattr', p, () => native().lsetxattr(p, name, value, flags));
  }
  async removexattr(loc: Loc, name: string): Promise<void> {
    const p = this.at(loc);
    sys('lremovexattr', p, () => native().lremovexattr(p, name));
  }
  async getxattrAt(loc: Loc, name: string): Promise<Buffer> {
    const p = this.at(loc);
    return sys('lgetxattr', p, () => native().lgetxattr(p, name));
  }
  async chmod(loc: Loc, mode: number): Promise<void> {
    // chmod(2) follows symlinks; the overlay never chmods a symlink (the VFS
    // refuses that before asking the filesystem).
    await fsp.chmod(this.at(loc), mode & 0o7777);
  }
  async chown(loc: Loc, uid: number, gid: number): Promise<void> {
    await fsp.lchown(this.at(loc), uid, gid);
  }
  async utimens(loc: Loc, atime: TimeSpec, mtime: TimeSpec): Promise<void> {
    const p = this.at(loc);
    const [as, an] = timespec(atime);
    const [ms, mn] = timespec(mtime);
    sys('utimensat', p, () => native().utimensat(p, as, an, ms, mn, native().AT_SYMLINK_NOFOLLOW));
  }
  async truncate(loc: Loc, size: number): Promise<void> {
    await fsp.truncate(this.at(loc), size);
  }
  async openFile(loc: Loc, flags: number, mode = 0o600): Promise<UpperFile> {
    this.calls.add('open');
    return new HostFile(await fsp.open(this.at(loc), flags | fsc.O_NOFOLLOW, mode), this.calls);
  }
  async listWork(): Promise<string[]> {
    return fsp.readdir(this.workRoot);
  }
}
