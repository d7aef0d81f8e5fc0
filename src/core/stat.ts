// The attributes of one object as a layer reports them, and as the overlay
// reports them to the kernel. Times are kept in nanoseconds (bigint) so that
// nothing is rounded inside the core; a transport that can only carry less
// rounds at its own edge.

export interface Stat {
  dev: bigint;
  ino: bigint;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  size: number;
  blocks: number;
  blksize: number;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

export interface StatFs {
  type: number;
  bsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  namemax: number;
}

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;
export const S_IFSOCK = 0o140000;

export function isDir(st: Stat): boolean {
  return (st.mode & S_IFMT) === S_IFDIR;
}
export function isReg(st: Stat): boolean {
  return (st.mode & S_IFMT) === S_IFREG;
}
export function isSymlink(st: Stat): boolean {
  return (st.mode & S_IFMT) === S_IFLNK;
}
export function isChr(st: Stat): boolean {
  return (st.mode & S_IFMT) === S_IFCHR;
}

/** Linux dev_t encoding (glibc's gnu_dev_major/minor). */
export function devMajor(rdev: number): number {
  return Number(((BigInt(rdev) >> 32n) & ~0xfffn) | ((BigInt(rdev) >> 8n) & 0xfffn));
}
export function devMinor(rdev: number): number {
  return Number(((BigInt(rdev) >> 12n) & ~0xffn) | (BigInt(rdev) & 0xffn));
}

/** A short name for a file type, for messages and tracing. */
export function typeName(mode: number): string {
  switch (mode & S_IFMT) {
    case S_IFDIR: return 'directory';
    case S_IFREG: return 'file';
    case S_IFLNK: return 'symlink';
    case S_IFCHR: return 'char-device';
    case S_IFBLK: return 'block-device';
    case S_IFIFO: return 'fifo';
    case S_IFSOCK: return 'socket';
    default: return 'unknown';
  }
}
