// Typed access to native/layerfs_native.node: the system calls Node.js lacks.
// Every function is synchronous and throws errors shaped like Node's fs errors
// (code, errno, syscall, path); see native/layerfs_native.c.
import * as path from 'path';

export interface NativeAddon {
  mknod(path: string, mode: number, major: number, minor: number): void;
  lgetxattr(path: string, name: string): Buffer;
  /** As lgetxattr, but undefined when the xattr is not set (ENODATA) or not supported there. */
  lgetxattrIfSet(path: string, name: string): Buffer | undefined;
  /** The value, or the errno when it is absent (ENODATA) or unsupported there (ENOTSUP). */
  lgetxattrOrErrno(path: string, name: string): Buffer | number;
  lsetxattr(path: string, name: string, value: Buffer, flags: number): void;
  llistxattr(path: string): string[];
  lremovexattr(path: string, name: string): void;
  renameat2(from: string, to: string, flags: number): void;
  umount2(path: string, flags: number): void;
  mount(source: string, target: string, fstype: string, flags: number, data: string): void;
  /** Seconds and nanoseconds apart; nsec may be UTIME_NOW or UTIME_OMIT. */
  utimensat(path: string, aSec: number, aNsec: number, mSec: number, mNsec: number, flags: number): void;
  /**
   * lstat(2) into nums (mode, nlink, uid, gid, rdev, size, blocks, blksize)
   * and bigs (dev, ino, atime, mtime, ctime; times in ns): 0, or -errno.
   */
  lstatInto(path: string, nums: Float64Array, bigs: BigInt64Array): number;
  lseek(fd: number, offset: number, whence: number): number;
  /** FUSE_DEV_IOC_BACKING_OPEN on the FUSE device: a backing id, or -errno. */
  fuseBackingOpen(devFd: number, fd: number): number;
  /** FUSE_DEV_IOC_BACKING_CLOSE: 0, or -errno. */
  fuseBackingClose(devFd: number, id: number): number;
  fallocate(fd: number, mode: number, offset: number, length: number): void;
  /**
   * Calls back on the main thread whenever fd is readable (level-triggered),
   * with 0 or a negative libuv error. The fd should be non-blocking.
   */
  pollReadable(fd: number, callback: (status: number) => void): PollHandle;
  pollStop(handle: PollHandle): void;
  /** Non-blocking read retried for up to usec microseconds: bytes read, or -errno (-EAGAIN: nothing came). */
  readSpin(fd: number, buf: Buffer, usec: number): number;
  /** An AF_UNIX stream socket pair, both ends close-on-exec. */
  socketpair(): [number, number];
  /** Blocks for one message; the fd it carried (SCM_RIGHTS), or -1 if none came (EOF). */
  recvFd(sock: number): number;
  /** Sets O_NONBLOCK (for an fd received from another process). */
  setNonblock(fd: number): void;
  readonly RENAME_NOREPLACE: number;
  readonly RENAME_EXCHANGE: number;
  readonly RENAME_WHITEOUT: number;
  readonly XATTR_CREATE: number;
  readonly XATTR_REPLACE: number;
  readonly MNT_FORCE: number;
  readonly MNT_DETACH: number;
  readonly UMOUNT_NOFOLLOW: number;
  readonly MS_RDONLY: number;
  readonly MS_NOSUID: number;
  readonly MS_NODEV: number;
  readonly MS_NOEXEC: number;
  readonly MS_SYNCHRONOUS: number;
  readonly MS_DIRSYNC: number;
  readonly MS_NOATIME: number;
  readonly MS_NODIRATIME: number;
  readonly MS_RELATIME: number;
  readonly MS_STRICTATIME: number;
  readonly MS_LAZYTIME: number;
  readonly UTIME_NOW: number;
  readonly UTIME_OMIT: number;
  readonly AT_SYMLINK_NOFOLLOW: number;
  readonly SEEK_DATA: number;
  readonly SEEK_HOLE: number;
}

/** Opaque handle returned by pollReadable. */
export type PollHandle = { readonly __poll: unique symbol };

let loaded: NativeAddon | undefined;

/** The addon, built by node-gyp during `npm ci` into native/build/Release. */
export function native(): NativeAddon {
  if (!loaded) {
    const file = path.join(__dirname, '..', 'native', 'build', 'Release', 'layerfs_native.node');
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    loaded = require(file) as NativeAddon;
  }
  return loaded;
}
