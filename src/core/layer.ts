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
  /** Entries of a directory, without "." and "..". */
  readdir(p: LayerPath): Promise<DirEntry[]>;
  readlink(p: LayerPath): Promise<string>;
  /** The value of one xattr; throws ENODATA when it is not set. */
  getxattr(p: LayerPath, name: string): Promise<Buffer>;
  listxattr(p: LayerPath): Promise<string[]>;
  open(p: LayerPath, flags: number): Promise<LayerFile>;
  statfs(p: LayerPath): Promise<StatFs>;
}
