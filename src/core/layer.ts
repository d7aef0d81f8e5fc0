// The Layer interface: the only way the overlay core touches storage.
// It is syscall-shaped and path-based, with paths relative to the layer root
// (LayerPath). No method follows a symlink in the final component; the overlay
// only ever asks for a child of something it has already seen to be a real
// directory in the same layer, so intermediate symlinks are never walked.
// Every failure is thrown as an FsError (or a Node fs error carrying a code).
import type { LayerPath } from './paths';
import type { Stat, StatFs } from './stat';

export interface LayerFile {
  read(buf: Buffer, offset: number, length: number, position: number): Promise<number>;
  close(): Promise<void>;
}

/** A directory entry; type is the S_IFMT bits from d_type, or 0 when unknown. */
export interface DirEntry {
  name: string;
  type: number;
}

export interface Layer {
  /** Where the layer lives, for messages ("/var/lib/lower1"). */
  readonly root: string;
  lstat(p: LayerPath): Promise<Stat>;
  /**
   * As lstat, but absence (ENOENT, or ENOTDIR: a non-directory on the way)
   * is undefined rather than an error: most lookups of a name in a layer
   * find nothing there, and a thrown error costs more than the call.
   */
  lstatMaybe(p: LayerPath): Promise<Stat | undefined>;
  /** Entries of a directory, without "." and "..". */
  readdir(p: LayerPath): Promise<DirEntry[]>;
  readlink(p: LayerPath): Promise<string>;
  /**
   * The value of one xattr; throws ENODATA when it is not set. known: what
   * this layer's lstat returned for p, when the caller still has it; a layer
   * may answer from what it knew when it produced that stat (IndexedLayer
   * does, so a cached lookup's xattrs cost no index query).
   */
  getxattr(p: LayerPath, name: string, known?: Stat): Promise<Buffer>;
  /** As getxattr, but an xattr that is not set is undefined rather than ENODATA. */
  getxattrMaybe(p: LayerPath, name: string, known?: Stat): Promise<Buffer | undefined>;
  listxattr(p: LayerPath, known?: Stat): Promise<string[]>;
  open(p: LayerPath, flags: number): Promise<LayerFile>;
  statfs(p: LayerPath): Promise<StatFs>;
}

/**
 * A place in the writable layer: a path in the upper directory, or a name in
 * the work directory (workdir/work), the scratch space where copies and
 * markers are built before being renamed into place. Both are on one
 * filesystem, so a rename between them is atomic.
 */
export type Loc = LayerPath | { readonly work: string };

/**
 * Kernel overlayfs's workdir/work/incompat: each entry names a feature a
 * mount of these layers must not ignore ('volatile': the upper may not have
 * survived a crash). The kernel refuses to mount while it has any; so does
 * layerfs. Not scratch: never cleared with the work directory's leftovers.
 */
export const INCOMPAT_DIR = 'incompat';

/** A time to set: nanoseconds since the epoch, the current time, or unchanged. */
export type TimeSpec = bigint | 'now' | 'omit';

/** An open file of the writable layer. */
export interface UpperFile extends LayerFile {
  /** Its descriptor, when it is a host file (a transport may hand it to the kernel). */
  readonly fd?: number;
  write(buf: Buffer, offset: number, length: number, position: number | null): Promise<number>;
  fsync(datasync: boolean): Promise<void>;
  truncate(size: number): Promise<void>;
  fallocate(mode: number, offset: number, length: number): Promise<void>;
  stat(): Promise<Stat>;
}

/** A readable file that can report where its data is, for sparse copies. */
export interface SeekableFile extends LayerFile {
  /** The next offset >= pos holding data (SEEK_DATA), or null past the last data. */
  nextData(pos: number): number | null;
  /** The next hole at or after pos (SEEK_HOLE); end of file counts as a hole. */
  nextHole(pos: number): number;
}

/**
 * The upper layer: everything a Layer does, plus the mutations the overlay
 * needs. Every method acts on the named entry itself (never follows a symlink
 * in the final component) and throws FsError-shaped errors.
 */
export interface UpperLayer extends Layer {
  // Modes given to mkdir, mknod and openFile (O_CREAT|O_EXCL) are applied
  // exactly: the process umask does not apply.
  /** Where the work directory lives, for messages. */
  readonly workRoot: string;
  lstatAt(loc: Loc): Promise<Stat>;
  mkdir(loc: Loc, mode: number): Promise<void>;
  mknod(loc: Loc, mode: number, rdev: number): Promise<void>;
  symlink(target: string, loc: Loc): Promise<void>;
  link(from: Loc, to: Loc): Promise<void>;
  unlink(loc: Loc): Promise<void>;
  rmdir(loc: Loc): Promise<void>;
  /** Removes a whole tree (work directory leftovers, replaced directories). */
  rmtree(loc: Loc): Promise<void>;
  /** renameat2(2); flags are RENAME_NOREPLACE / EXCHANGE / WHITEOUT. */
  rename(from: Loc, to: Loc, flags: number): Promise<void>;
  setxattr(loc: Loc, name: string, value: Buffer, flags: number): Promise<void>;
  removexattr(loc: Loc, name: string): Promise<void>;
  getxattrAt(loc: Loc, name: string): Promise<Buffer>;
  /** As getxattrAt, undefined when not set. */
  getxattrAtMaybe(loc: Loc, name: string): Promise<Buffer | undefined>;
  chmod(loc: Loc, mode: number): Promise<void>;
  chown(loc: Loc, uid: number, gid: number): Promise<void>;
  utimens(loc: Loc, atime: TimeSpec, mtime: TimeSpec): Promise<void>;
  truncate(loc: Loc, size: number): Promise<void>;
  /** open(2) with O_CREAT|O_EXCL allowed; the mode applies when creating. */
  openFile(loc: Loc, flags: number, mode?: number): Promise<UpperFile>;
  /** Names in the work directory. */
  listWork(): Promise<string[]>;
}
