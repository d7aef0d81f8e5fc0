// The fuse-native adapter: translates FUSE callbacks into Overlay calls and
// results back into what fuse-native expects. It holds no filesystem logic.
// Contract: no callback ever throws; every failure becomes a negative errno.
// Errors that are not filesystem errors (bugs) are reported through
// onUnexpected and answered with EIO.
import { constants as osc } from 'os';
import * as path from 'path';
import type FuseType from 'fuse-native';
import type { FuseOps, Signal } from 'fuse-native';
import { isUnexpected, toErrno } from '../core/errors';
import type { Overlay } from '../core/overlay';
import type { Stat, StatFs } from '../core/stat';

const E = osc.errno;

export type UnexpectedHandler = (op: string, path: string, err: unknown) => void;

/** fuse-native's stat object. Times cross its binding as milliseconds. */
export interface FuseStat {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  dev: number;
  nlink: number;
  ino: number;
  rdev: number;
  blksize: number;
  blocks: number;
  atime: number;
  mtime: number;
  ctime: number;
}

/** fuse-native carries st_ino as 32 bits; see docs/DESIGN.md. */
export function toFuseStat(st: Stat): FuseStat {
  return {
    mode: st.mode,
    uid: st.uid,
    gid: st.gid,
    size: st.size,
    dev: 0,
    nlink: st.nlink,
    ino: Number(st.ino & 0xffffffffn),
    rdev: st.rdev,
    blksize: st.blksize,
    blocks: st.blocks,
    atime: Number(st.atimeNs / 1000000n),
    mtime: Number(st.mtimeNs / 1000000n),
    ctime: Number(st.ctimeNs / 1000000n),
  };
}

function toFuseStatfs(s: StatFs): Record<string, number> {
  // fuse-native carries these as 32-bit values: clamp rather than wrap.
  const c = (n: number) => Math.min(n, 0xffffffff);
  return {
    bsize: s.bsize,
    frsize: s.bsize,
    blocks: c(s.blocks),
    bfree: c(s.bfree),
    bavail: c(s.bavail),
    files: c(s.files),
    ffree: c(s.ffree),
    favail: c(s.ffree),
    fsid: 0,
    flag: 0,
    namemax: s.namemax,
  };
}

interface FuseInternals {
  mnt: string;
  _thread: Buffer;
  _openCallback: ((err: Error | null) => void) | null;
  _malloc: unknown;
  _handlers: unknown;
  _fuseOptions(): string;
  _getImplementedArray(): Uint32Array;
}

interface FuseNativeBinding {
  sizeof_fuse_thread_t: number;
  fuse_native_mount(mnt: string, opts: string, thread: Buffer, ctx: unknown, malloc: unknown, handlers: unknown, implemented: Uint32Array): void;
}

/** fuse-native's own binding object (the module loader returns the loaded instance). */
function fuseNativeBinding(): FuseNativeBinding {
  const dir = path.dirname(require.resolve('fuse-native/package.json'));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require(require.resolve('node-gyp-build', { paths: [dir] })) as (d: string) => FuseNativeBinding)(dir);
}

/** Unknown inode number in readdir: glibc skips entries whose d_ino is 0. */
const UNKNOWN_INO = 0xffffffff;

/** The negative errno for err; bugs (non-filesystem errors) are reported first. */
function errnoFor(onUnexpected: UnexpectedHandler, op: string, path: string, err: unknown): number {
  if (isUnexpected(err)) onUnexpected(op, path, err);
  return toErrno(err);
}

export function fuseOps(ov: Overlay, onUnexpected: UnexpectedHandler): FuseOps {
  const fail = (op: string, path: string, err: unknown) => errnoFor(onUnexpected, op, path, err);
  /** Runs fn; answers cb(0, ...values) or cb(-errno). */
  const run = <T>(op: string, path: string, cb: Signal, fn: () => Promise<T>, reply: (v: T) => unknown[]): void => {
    fn().then(
      (v) => cb(0, ...reply(v)),
      (err: unknown) => cb(fail(op, path, err)),
    );
  };
  const none = (): unknown[] => [];
  const erofs = (op: string) => (path: string, ...rest: unknown[]) => {
    const cb = rest[rest.length - 1] as Signal;
    run(op, path, cb, async () => ov.refuseWrite(op, path), none);
  };

  return {
    init: (cb: Signal) => cb(0),
    getattr: (path: string, cb: Signal) => run('getattr', path, cb, () => ov.getattr(path), (st) => [toFuseStat(st)]),
    fgetattr: (path: string, _fd: number, cb: Signal) =>
      run('fgetattr', path, cb, () => ov.getattr(path), (st) => [toFuseStat(st)]),
    access: (path: string, mode: number, cb: Signal) => run('access', path, cb, () => ov.access(path, mode), none),
    readlink: (path: string, cb: Signal) => run('readlink', path, cb, () => ov.readlink(path), (t) => [t]),
    opendir: (path: string, _flags: number, cb: Signal) =>
      // ENOENT/ENOTDIR now rather than at readdir, without reading the listing twice.
      run('opendir', path, cb, () => ov.opendir(path), () => [0]),
    readdir: (path: string, cb: Signal) =>
      run('readdir', path, cb, () => ov.readdir(path), (ents) => {
        const names = ['.', '..'];
        const stats: Partial<FuseStat>[] = [{ mode: 0o040000, ino: UNKNOWN_INO }, { mode: 0o040000, ino: UNKNOWN_INO }];
        for (const e of ents) {
          names.push(e.name);
          stats.push({ mode: e.type, ino: UNKNOWN_INO });
        }
        return [names, stats];
      }),
    releasedir: (_path: string, _fd: number, cb: Signal) => cb(0),
    open: (path: string, flags: number, cb: Signal) => run('open', path, cb, () => ov.open(path, flags), (fh) => [fh]),
    read: (path: string, fh: number, buf: Buffer, len: number, pos: number, cb: Signal) => {
      ov.read(fh, buf, len, pos).then(
        (n) => cb(n),
        (err: unknown) => cb(fail('read', path, err)),
      );
    },
    release: (path: string, fh: number, cb: Signal) => run('release', path, cb, () => ov.release(fh), none),
    flush: (_path: string, _fh: number, cb: Signal) => cb(0),
    fsync: (_path: string, _datasync: number, _fh: number, cb: Signal) => cb(0),
    fsyncdir: (_path: string, _datasync: number, _fh: number, cb: Signal) => cb(0),
    statfs: (path: string, cb: Signal) => run('statfs', path, cb, () => ov.statfs(path), (s) => [toFuseStatfs(s)]),
    // Present so that fuse-native registers them with libfuse; the Fuse subclass
    // below answers them itself (buffer-size handling), so these are never called.
    getxattr: (path: string, _name: string, _pos: number, cb: Signal) => cb(fail('getxattr', path, new Error('unreachable'))),
    listxattr: (path: string, cb: Signal) => cb(fail('listxattr', path, new Error('unreachable'))),
    truncate: erofs('truncate'),
    ftruncate: erofs('ftruncate'),
    chown: erofs('chown'),
    chmod: erofs('chmod'),
    mknod: erofs('mknod'),
    setxattr: erofs('setxattr'),
    removexattr: erofs('removexattr'),
    write: (path: string, _fh: number, _buf: Buffer, _len: number, _pos: number, cb: Signal) =>
      cb(fail('write', path, errorOf(() => ov.refuseWrite('write', path)))),
    create: erofs('create'),
    utimens: erofs('utimens'),
    unlink: erofs('unlink'),
    rename: erofs('rename'),
    link: erofs('link'),
    symlink: (_target: string, path: string, cb: Signal) => erofs('symlink')(path, cb),
    mkdir: erofs('mkdir'),
    rmdir: erofs('rmdir'),
  };
}

function errorOf(fn: () => void): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

/**
 * A fuse-native subclass that (1) builds the libfuse option string itself, so
 * that use_ino and the standard mount flags reach libfuse, and (2) answers
 * getxattr/listxattr with correct size probing and ERANGE, which fuse-native's
 * own handlers get wrong.
 */
export function fuseClass(Fuse: typeof FuseType, ov: Overlay, libfuseOptions: string[], onUnexpected: UnexpectedHandler) {
  const fail = (op: string, path: string, err: unknown) => errnoFor(onUnexpected, op, path, err);
  return class LayerfsFuse extends Fuse {
    protected override _fuseOptions(): string {
      return libfuseOptions.length ? '-o' + libfuseOptions.join(',') : '';
    }

    /**
     * Replaces fuse-native's _open, whose pre-checks refuse a mountpoint that
     * is itself a mount point ("Mountpoint in use") although the kernel allows
     * mounting over one; layerfs validates the mountpoint itself (validate.ts).
     */
    _open(cb: (err: Error | null) => void): void {
      const self = this as unknown as FuseInternals;
      const binding = fuseNativeBinding();
      self._thread = Buffer.alloc(binding.sizeof_fuse_thread_t);
      self._openCallback = cb;
      try {
        binding.fuse_native_mount(self.mnt, self._fuseOptions(), self._thread, self, self._malloc, self._handlers, self._getImplementedArray());
      } catch (err) {
        self._openCallback = null;
        cb(err as Error);
      }
    }

    _op_getxattr(signal: Signal, path: string, name: string, valueBuf: Buffer): void {
      ov.getxattr(path, name).then(
        (value) => {
          if (valueBuf.length === 0) return signal(value.length, valueBuf.buffer);
          if (value.length > valueBuf.length) return signal(-E.ERANGE, valueBuf.buffer);
          value.copy(valueBuf);
          return signal(value.length, valueBuf.buffer);
        },
        (err: unknown) => signal(fail('getxattr', path, err), valueBuf.buffer),
      );
    }

    _op_listxattr(signal: Signal, path: string, listBuf: Buffer): void {
      ov.listxattr(path).then(
        (names) => {
          const list = Buffer.from(names.map((n) => n + '\0').join(''));
          if (listBuf.length === 0) return signal(list.length, listBuf.buffer);
          if (list.length > listBuf.length) return signal(-E.ERANGE, listBuf.buffer);
          list.copy(listBuf);
          return signal(list.length, listBuf.buffer);
        },
        (err: unknown) => signal(fail('listxattr', path, err), listBuf.buffer),
      );
    }
  };
}
