// Typed access to native/layerfs_native.node: the system calls Node.js lacks.
// Every function is synchronous and throws errors shaped like Node's fs errors
// (code, errno, syscall, path); see native/layerfs_native.c.
import * as path from 'path';

export interface NativeAddon {
  mknod(path: string, mode: number, major: number, minor: number): void;
  lgetxattr(path: string, name: string): Buffer;
  lsetxattr(path: string, name: string, value: Buffer, flags: number): void;
  llistxattr(path: string): string[];
  lremovexattr(path: string, name: string): void;
  renameat2(from: string, to: string, flags: number): void;
  umount2(path: string, flags: number): void;
  dlopenGlobal(path: string): void;
  /** Calls onChange whenever this mount namespace's mount table changes; returns stop(). */
  watchMountinfo(onChange: () => void): () => void;
  readonly RENAME_NOREPLACE: number;
  readonly RENAME_EXCHANGE: number;
  readonly RENAME_WHITEOUT: number;
  readonly XATTR_CREATE: number;
  readonly XATTR_REPLACE: number;
  readonly MNT_FORCE: number;
  readonly MNT_DETACH: number;
  readonly UMOUNT_NOFOLLOW: number;
}

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
