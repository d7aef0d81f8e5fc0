// The FUSE kernel protocol (include/uapi/linux/fuse.h), the parts layerfs
// speaks: opcodes, flags, and the byte layout of the structures it reads and
// writes. Little-endian, as on every Linux architecture Node supports.
// Protocol 7.31 is announced; passthrough (7.40) is negotiated through
// FUSE_INIT_EXT flags, which the kernel reads whatever minor is announced.

/**
 * A zero-filled buffer from Node's shared pool. Buffer.alloc gives every
 * small reply its own ArrayBuffer, and that external memory makes V8 run
 * full mark-compact collections over the daemon's large, long-lived heap
 * (caches) several times a second under load; pooled slices do not.
 */
export function zeroed(size: number): Buffer {
  return Buffer.allocUnsafe(size).fill(0);
}

export const FUSE_KERNEL_VERSION = 7;
export const FUSE_KERNEL_MINOR_VERSION = 31;
export const FUSE_ROOT_ID = 1;
export const IN_HEADER_SIZE = 40;
export const OUT_HEADER_SIZE = 16;

export const Op = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  SETATTR: 4,
  READLINK: 5,
  SYMLINK: 6,
  MKNOD: 8,
  MKDIR: 9,
  UNLINK: 10,
  RMDIR: 11,
  RENAME: 12,
  LINK: 13,
  OPEN: 14,
  READ: 15,
  WRITE: 16,
  STATFS: 17,
  RELEASE: 18,
  FSYNC: 20,
  SETXATTR: 21,
  GETXATTR: 22,
  LISTXATTR: 23,
  REMOVEXATTR: 24,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  FSYNCDIR: 30,
  GETLK: 31,
  SETLK: 32,
  SETLKW: 33,
  ACCESS: 34,
  CREATE: 35,
  INTERRUPT: 36,
  BMAP: 37,
  DESTROY: 38,
  IOCTL: 39,
  POLL: 40,
  BATCH_FORGET: 42,
  FALLOCATE: 43,
  READDIRPLUS: 44,
  RENAME2: 45,
  LSEEK: 46,
  COPY_FILE_RANGE: 47,
  SYNCFS: 50,
  TMPFILE: 51,
  /** Sent by kernels with FUSE_STATX; not served (ENOSYS: the kernel falls back to GETATTR). */
  STATX: 52,
} as const;

export const OP_NAMES: Record<number, string> = Object.fromEntries(Object.entries(Op).map(([k, v]) => [v, k.toLowerCase()]));

// fuse_init flags
export const FUSE_ASYNC_READ = 1 << 0;
export const FUSE_ATOMIC_O_TRUNC = 1 << 3;
export const FUSE_BIG_WRITES = 1 << 5;
export const FUSE_DO_READDIRPLUS = 1 << 13;
export const FUSE_READDIRPLUS_AUTO = 1 << 14;
export const FUSE_PARALLEL_DIROPS = 1 << 18;
export const FUSE_POSIX_ACL = 1 << 20;
export const FUSE_MAX_PAGES = 1 << 22;
/** The kernel keeps symlink targets in the inode's page cache (dropped by INVAL_INODE). */
export const FUSE_CACHE_SYMLINKS = 1 << 23;
/** The server clears set-id bits and security.capability on write, truncate and chown. */
export const FUSE_HANDLE_KILLPRIV_V2 = 1 << 28;
/** flags2 (the upper 32 bits of the flags) is meaningful in fuse_init_in and fuse_init_out. */
export const FUSE_INIT_EXT = 1 << 30;
/** In flags2: FUSE_PASSTHROUGH (1 << 37), open files backed by a file the kernel reads and writes itself. */
export const FUSE_PASSTHROUGH_FLAGS2 = 1 << (37 - 32);

// With HANDLE_KILLPRIV_V2: the caller lacks CAP_FSETID, clear set-id bits.
export const FUSE_WRITE_KILL_SUIDGID = 1 << 2; // fuse_write_in.write_flags
export const FUSE_OPEN_KILL_SUIDGID = 1 << 0; // fuse_open_in.open_flags
export const FATTR_KILL_SUIDGID = 1 << 11; // fuse_setattr_in.valid

// setattr valid bits
export const FATTR_MODE = 1 << 0;
export const FATTR_UID = 1 << 1;
export const FATTR_GID = 1 << 2;
export const FATTR_SIZE = 1 << 3;
export const FATTR_ATIME = 1 << 4;
export const FATTR_MTIME = 1 << 5;
export const FATTR_FH = 1 << 6;
export const FATTR_ATIME_NOW = 1 << 7;
export const FATTR_MTIME_NOW = 1 << 8;

// fuse_open_out.open_flags
/** Keep the inode's page cache from earlier opens (the data did not change). */
export const FOPEN_KEEP_CACHE = 1 << 1;
/** Let the kernel cache this directory's listing (with KEEP_CACHE: across opens). */
export const FOPEN_CACHE_DIR = 1 << 3;
/** Reads and writes go to the backing file named by backing_id (passthrough). */
export const FOPEN_PASSTHROUGH = 1 << 7;

// Notifications: written with unique 0 and the code in the error field.
export const FUSE_NOTIFY_INVAL_INODE = 2;
export const FUSE_NOTIFY_INVAL_ENTRY = 3;

/** Drop the kernel's attributes of a node, and its cached data from off (off < 0: attributes only). */
export function notifyInvalInode(nodeid: number, off: number, len: number): Buffer {
  const b = zeroed(OUT_HEADER_SIZE + 24);
  b.writeUInt32LE(b.length, 0);
  b.writeInt32LE(FUSE_NOTIFY_INVAL_INODE, 4);
  b.writeBigUInt64LE(BigInt(nodeid), 16);
  b.writeBigInt64LE(BigInt(off), 24);
  b.writeBigInt64LE(BigInt(len), 32);
  return b;
}

/** Drop the kernel's dentry (positive or negative) for name in the directory node parent. */
export function notifyInvalEntry(parent: number, name: string): Buffer {
  const n = Buffer.from(name);
  const b = zeroed(OUT_HEADER_SIZE + 16 + n.length + 1);
  b.writeUInt32LE(b.length, 0);
  b.writeInt32LE(FUSE_NOTIFY_INVAL_ENTRY, 4);
  b.writeBigUInt64LE(BigInt(parent), 16);
  b.writeUInt32LE(n.length, 24);
  n.copy(b, 32);
  return b;
}

export const FUSE_GETATTR_FH = 1 << 0;
export const FUSE_FSYNC_FDATASYNC = 1 << 0;

/** The attributes the kernel caches for an inode (struct fuse_attr). */
export interface Attr {
  ino: bigint;
  size: number;
  blocks: number;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  blksize: number;
}

export const ATTR_SIZE = 88;
export const ENTRY_OUT_SIZE = 40 + ATTR_SIZE;
export const ATTR_OUT_SIZE = 16 + ATTR_SIZE;
export const OPEN_OUT_SIZE = 16;
export const STATFS_OUT_SIZE = 80;
export const INIT_OUT_SIZE = 64;

const NS = 1000000000n;

function splitNs(ns: bigint): [bigint, number] {
  let s = ns / NS;
  let n = ns % NS;
  if (n < 0n) {
    s -= 1n;
    n += NS;
  }
  return [s, Number(n)];
}

export function writeAttr(b: Buffer, o: number, a: Attr): void {
  const [as, an] = splitNs(a.atimeNs);
  const [ms, mn] = splitNs(a.mtimeNs);
  const [cs, cn] = splitNs(a.ctimeNs);
  b.writeBigUInt64LE(BigInt.asUintN(64, a.ino), o);
  b.writeBigUInt64LE(BigInt(a.size), o + 8);
  b.writeBigUInt64LE(BigInt(a.blocks), o + 16);
  b.writeBigInt64LE(as, o + 24);
  b.writeBigInt64LE(ms, o + 32);
  b.writeBigInt64LE(cs, o + 40);
  b.writeUInt32LE(an, o + 48);
  b.writeUInt32LE(mn, o + 52);
  b.writeUInt32LE(cn, o + 56);
  b.writeUInt32LE(a.mode >>> 0, o + 60);
  b.writeUInt32LE(a.nlink >>> 0, o + 64);
  b.writeUInt32LE(a.uid >>> 0, o + 68);
  b.writeUInt32LE(a.gid >>> 0, o + 72);
  b.writeUInt32LE(a.rdev >>> 0, o + 76);
  b.writeUInt32LE(a.blksize >>> 0, o + 80);
  b.writeUInt32LE(0, o + 84);
}

/** Seconds + nanoseconds as cache-validity fields. */
function validity(seconds: number): [bigint, number] {
  const whole = Math.floor(seconds);
  return [BigInt(whole), Math.round((seconds - whole) * 1e9)];
}

export function entryOut(nodeid: number, generation: number, entryValid: number, attrValid: number, a: Attr): Buffer {
  const b = zeroed(ENTRY_OUT_SIZE);
  const [es, en] = validity(entryValid);
  const [as, an] = validity(attrValid);
  b.writeBigUInt64LE(BigInt(nodeid), 0);
  b.writeBigUInt64LE(BigInt(generation), 8);
  b.writeBigUInt64LE(es, 16);
  b.writeBigUInt64LE(as, 24);
  b.writeUInt32LE(en, 32);
  b.writeUInt32LE(an, 36);
  writeAttr(b, 40, a);
  return b;
}

/** A negative entry: nodeid 0 tells the kernel to cache "absent" for entryValid. */
export function negativeEntryOut(entryValid: number): Buffer {
  const b = zeroed(ENTRY_OUT_SIZE);
  const [es, en] = validity(entryValid);
  b.writeBigUInt64LE(es, 16);
  b.writeUInt32LE(en, 32);
  return b;
}

export function attrOut(attrValid: number, a: Attr): Buffer {
  const b = zeroed(ATTR_OUT_SIZE);
  const [as, an] = validity(attrValid);
  b.writeBigUInt64LE(as, 0);
  b.writeUInt32LE(an, 8);
  writeAttr(b, 16, a);
  return b;
}

/** fuse_open_out; backingId with FOPEN_PASSTHROUGH (0 otherwise). */
export function openOut(fh: number, openFlags: number, backingId = 0): Buffer {
  const b = zeroed(OPEN_OUT_SIZE);
  b.writeBigUInt64LE(BigInt(fh), 0);
  b.writeUInt32LE(openFlags, 8);
  b.writeInt32LE(backingId, 12);
  return b;
}

export interface KStatfs {
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  bsize: number;
  namelen: number;
}

export function statfsOut(s: KStatfs): Buffer {
  const b = zeroed(STATFS_OUT_SIZE);
  b.writeBigUInt64LE(BigInt(s.blocks), 0);
  b.writeBigUInt64LE(BigInt(s.bfree), 8);
  b.writeBigUInt64LE(BigInt(s.bavail), 16);
  b.writeBigUInt64LE(BigInt(s.files), 24);
  b.writeBigUInt64LE(BigInt(s.ffree), 32);
  b.writeUInt32LE(s.bsize, 40);
  b.writeUInt32LE(s.namelen, 44);
  b.writeUInt32LE(s.bsize, 48); // frsize
  return b;
}

/** Size of one struct fuse_dirent holding a name of nameLen bytes, 8-aligned. */
export function direntSize(nameLen: number): number {
  return (24 + nameLen + 7) & ~7;
}

export function writeDirent(b: Buffer, o: number, ino: bigint, off: number, type: number, name: Buffer): number {
  const size = direntSize(name.length);
  b.writeBigUInt64LE(BigInt.asUintN(64, ino), o);
  b.writeBigUInt64LE(BigInt(off), o + 8);
  b.writeUInt32LE(name.length, o + 16);
  b.writeUInt32LE(type, o + 20);
  name.copy(b, o + 24);
  b.fill(0, o + 24 + name.length, o + size);
  return size;
}

/** A request as read from /dev/fuse: the header fields and the argument bytes. */
export interface Request {
  opcode: number;
  unique: bigint;
  nodeid: number;
  uid: number;
  gid: number;
  pid: number;
  /** The bytes after the header (the op's arguments). */
  arg: Buffer;
}

/** The opcode of the request whose header starts b (before parsing the rest). */
export function opcodeOf(b: Buffer): number {
  return b.readUInt32LE(4);
}

export function parseRequest(b: Buffer): Request {
  const len = b.readUInt32LE(0);
  const extlen = b.readUInt16LE(36) * 8;
  return {
    opcode: opcodeOf(b),
    unique: b.readBigUInt64LE(8),
    nodeid: Number(b.readBigUInt64LE(16)),
    uid: b.readUInt32LE(24),
    gid: b.readUInt32LE(28),
    pid: b.readUInt32LE(32),
    arg: b.subarray(IN_HEADER_SIZE, len - extlen),
  };
}

/** The NUL-terminated strings at the start of an argument buffer. */
export function cstrings(b: Buffer, count: number, from = 0): string[] {
  const out: string[] = [];
  let o = from;
  for (let i = 0; i < count; i++) {
    let end = b.indexOf(0, o);
    if (end < 0) end = b.length;
    out.push(b.toString('utf8', o, end));
    o = end + 1;
  }
  return out;
}

export function outHeader(unique: bigint, error: number, payloadLen: number): Buffer {
  const h = zeroed(OUT_HEADER_SIZE);
  h.writeUInt32LE(OUT_HEADER_SIZE + payloadLen, 0);
  h.writeInt32LE(error, 4);
  h.writeBigUInt64LE(unique, 8);
  return h;
}
