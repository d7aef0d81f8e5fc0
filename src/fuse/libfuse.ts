// Loading fuse-native. Its prebuilt binding is linked against libfuse.so.2,
// which a fresh machine lacks; the package ships that library as
// prebuilds/<platform>-<arch>/libfuse.so (SONAME libfuse.so.2). Loading it
// first with RTLD_GLOBAL|RTLD_NODELETE makes the dynamic linker satisfy the
// binding's NEEDED entry by SONAME, so no system package, LD_LIBRARY_PATH or
// install-time copy is needed. See docs/DESIGN.md.
import * as fs from 'fs';
import * as path from 'path';
import type FuseType from 'fuse-native';
import { native } from '../native';

let loaded: typeof FuseType | undefined;

/** Candidate locations of the libfuse.so.2 shipped inside fuse-native's dependency tree. */
export function bundledLibfuse(): string[] {
  const pkg = path.dirname(require.resolve('fuse-native/package.json'));
  const candidates = [path.join(pkg, 'prebuilds', `${process.platform}-${process.arch}`, 'libfuse.so')];
  try {
    const shared = path.dirname(require.resolve('fuse-shared-library-linux/package.json', { paths: [pkg] }));
    candidates.push(path.join(shared, 'libfuse', 'lib', 'libfuse.so'));
  } catch {
    // optional: fuse-native's own prebuild copy is enough
  }
  return candidates;
}

export function loadFuseNative(): typeof FuseType {
  if (loaded) return loaded;
  const lib = bundledLibfuse().find((p) => fs.existsSync(p));
  if (lib === undefined) throw new Error('fuse-native ships no libfuse.so for this platform');
  native().dlopenGlobal(lib);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  loaded = require('fuse-native') as typeof FuseType;
  return loaded;
}
