// HostLayer: a Layer over a directory of the host filesystem. Paths are
// relative to the layer root and joined as strings; the overlay only asks for
// children of entries it has seen to be real directories in this layer, so no
// symlink inside the layer is followed (see core/layer.ts).
// xattrs go through the native addon (lgetxattr & co. are fast, synchronous
// metadata calls). Other metadata calls are synchronous on the upper layer
// and on lower layers on a local filesystem (HostLayer.sync), asynchronous on
// anything that may stall (network or FUSE filesystems, and mounts inside a
// layer), so that only the requests touching it wait. File data is read
// synchronously on those same local layers up to 128 KiB at a time.
import * as fs from 'fs';
import { promises as fsp, type BigIntStats, type Dirent } from 'fs';
import { constants as fsc } from 'fs';
import { constants as osc } from 'os';
import { asFsError, errnoError, fsError, hasCode } from '../core/errors';
import type { DirEntry, Layer, LayerFile, Loc, SeekableFile, TimeSpec, UpperFile, UpperLayer } from '../core/layer';
import type { LayerPath } from '../core/paths';
import { devMajor, devMinor, S_IFMT, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK, type Stat, type StatFs } from '../core/stat';
import { applyOverride, formatOverride, OVERRIDE_NAMES, parseOverride, realModeUnder, type Override } from '../core/override-stat';
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

const STAT_NUMS = new Float64Array(8);
const STAT_BIGS = new BigInt64Array(5);
const { ENOENT, ENOTDIR } = osc.errno;

/**
 * lstat(2) of a host path, undefined when absent (ENOENT, ENOTDIR). Through
 * the addon's lstatInto: no exception for absence (most lookups in a layer
 * find nothing) and no Stats object of eighteen bigints for a hit.
 */
function lstatHostMaybe(path: string): Stat | undefined {
  const r = native().lstatInto(path, STAT_NUMS, STAT_BIGS);
  if (r < 0) {
    if (r === -ENOENT || r === -ENOTDIR) return undefined;
    throw errnoError(-r, 'lstat', path);
  }
  const n = STAT_NUMS;
  const b = STAT_BIGS;
  const ino = b[1];
  return {
    dev: b[0],
    ino: ino < 0n ? BigInt.asUintN(64, ino) : ino,
    mode: n[0],
    nlink: n[1],
    uid: n[2],
    gid: n[3],
    rdev: n[4],
    size: n[5],
    blocks: n[6],
    blksize: n[7],
    atimeNs: b[2],
    mtimeNs: b[3],
    ctimeNs: b[4],
  };
}

/** lstat(2) of a host path; absent: ENOENT. */
function lstatHost(path: string): Stat {
  const st = lstatHostMaybe(path);
  if (st === undefined) throw fsError('ENOENT', 'lstat', path);
  return st;
}

// The process umask, read once: nothing in layerfs changes it. Creating calls
// apply their modes exactly (the UpperLayer contract), so a mode the umask
// would cut is set again with chmod after creating, which costs a system call
// only when a umask bit meets the mode.
const UMASK = process.umask();

/** After creating p with mode: restores what the umask took away. */
function unmask(p: string, mode: number): void {
  if ((mode & 0o777 & UMASK) !== 0) sys('chmod', p, () => fs.chmodSync(p, mode & 0o7777));
}

/** Calls a synchronous function (native addon or Node fs), turning its error into an FsError. */
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

/**
 * An open file of a layer, by raw descriptor. fsync, truncate and large
 * reads and writes are asynchronous (they may wait on the disk or a server).
 * On a layer with synchronous metadata (HostLayer.sync: local filesystems,
 * and always the upper) closing, fstat, small writes and reads are
 * synchronous too: a buffered write of a few KiB to a local file is a copy
 * into the page cache, far cheaper than a threadpool round trip.
 */
class HostFile implements SeekableFile, UpperFile {
  constructor(
    readonly fd: number,
    private readonly path: string,
    private readonly calls: SyscallCounts,
    private readonly sync: boolean,
  ) {}
  read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    return this.transfer('pread', SYNC_READ_MAX, fs.readSync, fs.read, buf, offset, length, position);
  }
  write(buf: Buffer, offset: number, length: number, position: number | null): Promise<number> {
    return this.transfer('pwrite', SYNC_WRITE_MAX, fs.writeSync, fs.write, buf, offset, length, position);
  }
  /** One pread/pwrite: synchronous up to syncMax bytes on a synchronous layer, else on the threadpool. */
  private transfer(
    syscall: 'pread' | 'pwrite',
    syncMax: number,
    syncFn: (fd: number, buf: Buffer, offset: number, length: number, position: number | null) => number,
    asyncFn: (fd: number, buf: Buffer, offset: number, length: number, position: number | null, cb: (err: NodeJS.ErrnoException | null, n: number) => void) => void,
    buf: Buffer,
    offset: number,
    length: number,
    position: number | null,
  ): Promise<number> {
    this.calls.add(syscall);
    if (this.sync && length <= syncMax) {
      try {
        return Promise.resolve(syncFn(this.fd, buf, offset, length, position));
      } catch (err) {
        return Promise.reject(asFsError(err, syscall, this.path));
      }
    }
    return new Promise((resolve, reject) =>
      asyncFn(this.fd, buf, offset, length, position, (err, n) => (err ? reject(asFsError(err, syscall, this.path)) : resolve(n))),
    );
  }
  fsync(datasync: boolean): Promise<void> {
    return new Promise((resolve, reject) => (datasync ? fs.fdatasync : fs.fsync)(this.fd, (err) => (err ? reject(asFsError(err, 'fsync', this.path)) : resolve())));
  }
  truncate(size: number): Promise<void> {
    return new Promise((resolve, reject) => fs.ftruncate(this.fd, size, (err) => (err ? reject(asFsError(err, 'ftruncate', this.path)) : resolve())));
  }
  async fallocate(mode: number, offset: number, length: number): Promise<void> {
    sys('fallocate', this.path, () => native().fallocate(this.fd, mode, offset, length));
  }
  async stat(): Promise<Stat> {
    if (this.sync) return statFromNode(sys('fstat', this.path, () => fs.fstatSync(this.fd, { bigint: true })));
    return new Promise((resolve, reject) =>
      fs.fstat(this.fd, { bigint: true }, (err, st) => (err ? reject(asFsError(err, 'fstat', this.path)) : resolve(statFromNode(st)))),
    );
  }
  nextData(pos: number): number | null {
    this.calls.add('lseek');
    try {
      return native().lseek(this.fd, pos, native().SEEK_DATA);
    } catch (err) {
      if (hasCode(err, 'ENXIO')) return null;
      throw asFsError(err, 'lseek');
    }
  }
  nextHole(pos: number): number {
    this.calls.add('lseek');
    return sys('lseek', this.path, () => native().lseek(this.fd, pos, native().SEEK_HOLE));
  }
  async close(): Promise<void> {
    this.calls.add('close');
    if (this.sync) sys('close', this.path, () => fs.closeSync(this.fd));
    else await new Promise<void>((resolve, reject) => fs.close(this.fd, (err) => (err ? reject(asFsError(err, 'close', this.path)) : resolve())));
  }
}

const ENODATA = osc.errno.ENODATA;

/**
 * lgetxattr(2). Absence is the common answer (security.capability before a
 * first write, security.selinux for ls -l, the markers of every directory
 * resolved): it comes from the addon as an errno, and is thrown here as a
 * stackless FsError. With the addon's own exception an absent xattr cost
 * 25-30 us through Overlay.getxattr, now 9-12 us (DESIGN, "Caching").
 */
function xattrOrThrow(path: string, name: string): Buffer {
  const v = xattrMaybe(path, name);
  if (v === undefined) throw fsError('ENODATA', 'lgetxattr', path);
  return v;
}

/** lgetxattr(2): undefined when not set; EOPNOTSUPP where the filesystem has no xattrs. */
function xattrMaybe(path: string, name: string): Buffer | undefined {
  const v = sys('lgetxattr', path, () => native().lgetxattrOrErrno(path, name));
  if (typeof v !== 'number') return v;
  if (v === ENODATA) return undefined;
  throw fsError('EOPNOTSUPP', 'lgetxattr', path);
}

/** Writes up to this size are made synchronously on synchronous layers (see HostFile). */
const SYNC_WRITE_MAX = 64 * 1024;
/**
 * Reads up to this size (the kernel's readahead chunk) are made synchronously
 * on synchronous layers: a threadpool round trip per READ cost more than the
 * read itself from the page cache, and a cold read of a local disk blocks the
 * loop no longer than it blocks fuse-overlayfs's single thread.
 */
const SYNC_READ_MAX = 128 * 1024;

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

  /**
   * The override xattr this layer's ownership is read from (and, for the
   * upper, written to), when it is in that mode (core/override-stat.ts).
   */
  protected overrideName: string | undefined;

  /**
   * @param sync metadata calls (lstat, readdir, readlink, open, close) are
   * made synchronously, and so are reads of up to 128 KiB: only for layers
   * on a local filesystem (fstype.ts).
   * @param mountsInside layer paths where another filesystem is mounted
   * inside the layer (it may stall: a FUSE or network mount); calls at or
   * below them stay asynchronous.
   */
  constructor(
    readonly root: string,
    private readonly sync = false,
    private readonly mountsInside: readonly LayerPath[] = [],
  ) {}

  /** The override xattr name the root carries, if any (the layer is then read in that mode). */
  overrideMark(): string | undefined {
    const carries = (name: string): boolean => {
      try {
        return native().lgetxattrIfSet(this.root, name) !== undefined;
      } catch {
        return false; // not readable here (EACCES on user.* of a foreign root)
      }
    };
    return OVERRIDE_NAMES.find(carries);
  }

  /** Reads (and for the upper, writes) ownership overrides in xattr name. */
  useOverride(name: string): void {
    this.overrideName = name;
  }

  get override(): string | undefined {
    return this.overrideName;
  }

  /** The override on path, for a regular file or directory of a layer in that mode. */
  protected readOverride(path: string, real: Stat): Override | undefined {
    const name = this.overrideName;
    if (name === undefined) return undefined;
    const type = real.mode & S_IFMT;
    if (type !== S_IFREG && type !== S_IFDIR) return undefined;
    this.calls.add('lgetxattr');
    const v = sys('lgetxattr', path, () => native().lgetxattrIfSet(path, name));
    return v === undefined ? undefined : parseOverride(v.toString('latin1'), real);
  }

  /** real, or what its override says. */
  protected shown(path: string, real: Stat): Stat {
    if (this.overrideName === undefined) return real;
    const o = this.readOverride(path, real);
    return o === undefined ? real : applyOverride(real, o);
  }

  /** Whether calls on p may be made synchronously. */
  protected syncAt(p: LayerPath): boolean {
    if (!this.sync) return false;
    for (const m of this.mountsInside) if (p === m || p.startsWith(`${m}/`)) return false;
    return true;
  }

  /** The host path of a layer path. */
  hostPath(p: LayerPath): string {
    return p === '' ? this.root : `${this.root}/${p}`;
  }

  async lstat(p: LayerPath): Promise<Stat> {
    const st = await this.lstatMaybe(p);
    if (st === undefined) throw fsError('ENOENT', 'lstat', this.hostPath(p));
    return st;
  }

  async lstatMaybe(p: LayerPath): Promise<Stat | undefined> {
    this.calls.add('lstat');
    const path = this.hostPath(p);
    let st: Stat | undefined;
    if (this.syncAt(p)) st = lstatHostMaybe(path);
    else {
      try {
        st = statFromNode(await fsp.lstat(path, { bigint: true }));
      } catch (err) {
        if (!hasCode(err, 'ENOENT', 'ENOTDIR')) throw asFsError(err, 'lstat', path);
      }
    }
    return st === undefined ? undefined : this.shown(path, st);
  }

  async readdir(p: LayerPath): Promise<DirEntry[]> {
    this.calls.add('readdir');
    const dir = this.hostPath(p);
    const ents = this.syncAt(p) ? sys('scandir', dir, () => fs.readdirSync(dir, { withFileTypes: true })) : await fsp.readdir(dir, { withFileTypes: true });
    return ents.map((d) => ({ name: d.name, type: direntType(d) }));
  }

  async readlink(p: LayerPath): Promise<string> {
    this.calls.add('readlink');
    const path = this.hostPath(p);
    return this.syncAt(p) ? sys('readlink', path, () => fs.readlinkSync(path)) : fsp.readlink(path);
  }

  async getxattr(p: LayerPath, name: string): Promise<Buffer> {
    this.calls.add('lgetxattr');
    return xattrOrThrow(this.hostPath(p), name);
  }

  async getxattrMaybe(p: LayerPath, name: string): Promise<Buffer | undefined> {
    this.calls.add('lgetxattr');
    return xattrMaybe(this.hostPath(p), name);
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
    const path = this.hostPath(p);
    const sync = this.syncAt(p);
    const fd = sync
      ? sys('open', path, () => fs.openSync(path, flags))
      : await new Promise<number>((resolve, reject) => fs.open(path, flags, (err, fd) => (err ? reject(asFsError(err, 'open', path)) : resolve(fd))));
    return new HostFile(fd, path, this.calls, sync);
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
 *
 * Metadata calls on the upper are synchronous system calls, not threadpool
 * round trips: a create or copy-up makes five to ten of them in sequence, and
 * each hop cost more than the call (create of 2 000 files took 2.2 ms per
 * file). The upper is the overlay's own writable directory on a local
 * filesystem (it must share one with the work directory); if it stalls,
 * every write stalls anyway. Data (reads, writes, copy-up of file contents)
 * and recursive removal stay asynchronous: they can be long.
 */
export class HostUpperLayer extends HostLayer implements UpperLayer {
  constructor(
    root: string,
    readonly workRoot: string,
  ) {
    super(root, true);
  }

  at(loc: Loc): string {
    return typeof loc === 'string' ? this.hostPath(loc) : `${this.workRoot}/${loc.work}`;
  }

  async lstatAt(loc: Loc): Promise<Stat> {
    const p = this.at(loc);
    return this.shown(p, lstatHost(p));
  }
  async mkdir(loc: Loc, mode: number): Promise<void> {
    const p = this.at(loc);
    sys('mkdir', p, () => fs.mkdirSync(p, { mode }));
    unmask(p, mode);
  }
  async mknod(loc: Loc, mode: number, rdev: number): Promise<void> {
    const p = this.at(loc);
    const type = mode & S_IFMT;
    const createFile = (m: number) => sys('open', p, () => fs.closeSync(fs.openSync(p, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY, m)));
    if (type === S_IFREG) {
      // A regular file: mknod(2) would do, but open(2) works where mknod is refused.
      createFile(mode & 0o7777);
    } else {
      try {
        sys('mknod', p, () => native().mknod(p, mode, devMajor(rdev), devMinor(rdev)));
      } catch (err) {
        // A device node the daemon may not make (no CAP_MKNOD): an empty
        // file that the override xattr says is the device. A 0/0 char
        // device is a whiteout, never faked.
        const device = type === S_IFCHR || type === S_IFBLK;
        if (this.overrideName === undefined || !device || (type === S_IFCHR && rdev === 0) || !hasCode(err, 'EPERM')) throw err;
        createFile(0o600);
        try {
          this.writeOverride(p, { uid: process.geteuid?.() ?? 0, gid: process.getegid?.() ?? 0, mode, rdev });
        } catch (e) {
          fs.rmSync(p, { force: true });
          throw e;
        }
        return;
      }
    }
    unmask(p, mode);
  }
  async symlink(target: string, loc: Loc): Promise<void> {
    const p = this.at(loc);
    sys('symlink', p, () => fs.symlinkSync(target, p));
  }
  async link(from: Loc, to: Loc): Promise<void> {
    const a = this.at(from);
    const b = this.at(to);
    sys('link', a, () => fs.linkSync(a, b));
  }
  async unlink(loc: Loc): Promise<void> {
    const p = this.at(loc);
    sys('unlink', p, () => fs.unlinkSync(p));
  }
  async rmdir(loc: Loc): Promise<void> {
    const p = this.at(loc);
    sys('rmdir', p, () => fs.rmdirSync(p));
  }
  async rmtree(loc: Loc): Promise<void> {
    await fsp.rm(this.at(loc), { recursive: true, force: true });
  }
  async rename(from: Loc, to: Loc, flags: number): Promise<void> {
    const a = this.at(from);
    const b = this.at(to);
    if (flags === 0) sys('rename', a, () => fs.renameSync(a, b));
    else sys('renameat2', a, () => native().renameat2(a, b, flags));
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
    return xattrOrThrow(this.at(loc), name);
  }
  async getxattrAtMaybe(loc: Loc, name: string): Promise<Buffer | undefined> {
    return xattrMaybe(this.at(loc), name);
  }
  async chmod(loc: Loc, mode: number): Promise<void> {
    // chmod(2) follows symlinks; the overlay never chmods a symlink (the VFS
    // refuses that before asking the filesystem).
    const p = this.at(loc);
    if (this.overrideName === undefined) {
      sys('chmod', p, () => fs.chmodSync(p, mode & 0o7777));
      return;
    }
    const real = lstatHost(p);
    const cur = this.readOverride(p, real);
    if (cur !== undefined) {
      const o = { ...cur, mode: (cur.mode & S_IFMT) | (mode & 0o7777) };
      this.writeOverride(p, o);
      sys('chmod', p, () => fs.chmodSync(p, realModeUnder(o)));
      return;
    }
    sys('chmod', p, () => fs.chmodSync(p, mode & 0o7777));
    // The kernel drops a set-gid bit for a group the daemon is not in:
    // what the caller asked for is kept in the xattr instead.
    const type = real.mode & S_IFMT;
    if (type !== S_IFREG && type !== S_IFDIR) return;
    const after = lstatHost(p);
    if ((after.mode & 0o7777) !== (mode & 0o7777)) this.writeOverride(p, { uid: after.uid, gid: after.gid, mode: type | (mode & 0o7777), rdev: 0 });
  }
  async chown(loc: Loc, uid: number, gid: number): Promise<void> {
    const p = this.at(loc);
    if (this.overrideName === undefined) {
      sys('lchown', p, () => fs.lchownSync(p, uid, gid));
      return;
    }
    const real = lstatHost(p);
    const cur = this.readOverride(p, real);
    if (cur === undefined) {
      try {
        sys('lchown', p, () => fs.lchownSync(p, uid, gid));
        return;
      } catch (err) {
        // EINVAL: an id this user namespace does not map. Kernel overlayfs
        // refuses such a copy-up with EOVERFLOW; so does layerfs, rather
        // than record the overflow id and lose the real owner.
        if (hasCode(err, 'EINVAL')) throw fsError('EOVERFLOW', 'lchown', p, `owner ${uid}:${gid} is not mapped in this user namespace`);
        const type = real.mode & S_IFMT;
        if (!hasCode(err, 'EPERM') || (type !== S_IFREG && type !== S_IFDIR)) throw err;
      }
    }
    const base = cur ?? { uid: real.uid, gid: real.gid, mode: real.mode, rdev: real.rdev };
    this.writeOverride(p, { ...base, uid: uid === -1 ? base.uid : uid, gid: gid === -1 ? base.gid : gid });
  }

  private rootMarked = false;

  /**
   * Records o on path. The first time, the upper root is marked too (with
   * its own real attributes, as containers/storage marks its layers), so
   * that any later mount of this layer, by layerfs or fuse-overlayfs, reads
   * it in this mode.
   */
  private writeOverride(path: string, o: Override): void {
    const name = this.overrideName!;
    if (!this.rootMarked) {
      if (this.overrideMark() === undefined) {
        const st = lstatHost(this.root);
        sys('lsetxattr', this.root, () => native().lsetxattr(this.root, name, Buffer.from(formatOverride({ uid: st.uid, gid: st.gid, mode: st.mode, rdev: 0 })), 0));
      }
      this.rootMarked = true;
    }
    sys('lsetxattr', path, () => native().lsetxattr(path, name, Buffer.from(formatOverride(o)), 0));
  }
  async utimens(loc: Loc, atime: TimeSpec, mtime: TimeSpec): Promise<void> {
    const p = this.at(loc);
    const [as, an] = timespec(atime);
    const [ms, mn] = timespec(mtime);
    sys('utimensat', p, () => native().utimensat(p, as, an, ms, mn, native().AT_SYMLINK_NOFOLLOW));
  }
  async truncate(loc: Loc, size: number): Promise<void> {
    const p = this.at(loc);
    sys('truncate', p, () => fs.truncateSync(p, size));
  }
  async openFile(loc: Loc, flags: number, mode = 0o600): Promise<UpperFile> {
    this.calls.add('open');
    const p = this.at(loc);
    const fd = sys('open', p, () => fs.openSync(p, flags | fsc.O_NOFOLLOW, mode));
    if ((flags & (fsc.O_CREAT | fsc.O_EXCL)) === (fsc.O_CREAT | fsc.O_EXCL)) {
      try {
        unmask(p, mode);
      } catch (err) {
        fs.closeSync(fd);
        throw err;
      }
    }
    return new HostFile(fd, p, this.calls, true);
  }
  async listWork(): Promise<string[]> {
    return fsp.readdir(this.workRoot);
  }
}
