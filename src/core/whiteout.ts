// The on-disk format of whiteouts and opaque directories: every form layerfs
// reads lives here, so that lookup and readdir share one definition.
//
// Whiteouts (hide the same name in every layer below):
//   - chardev: character device 0/0 (kernel overlayfs's native form);
//   - xattr:   zero-size regular file with trusted|user.overlay.whiteout, honoured
//              only in a directory whose own layer copy carries overlay.opaque=x
//              (kernel 6.7+ rule, which saves checking every entry);
//   - wh-file: OCI/AUFS ".wh.NAME" file next to NAME.
// Opaque directories (stop the merge below this layer): overlay.opaque=y under
// trusted. or user., fuse-overlayfs's user.fuseoverlayfs.opaque=y, or an OCI
// ".wh..wh..opq" file inside the directory. Only a value starting with 'y' is
// opaque; 'x' only announces xattr whiteouts.
import { isOverrideXattr } from './override-stat';
import { hasCode } from './errors';
import type { Layer } from './layer';
import { layerChild, type LayerPath } from './paths';
import { isChr, isReg, type Stat } from './stat';

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';

export type WhiteoutForm = 'chardev' | 'xattr' | 'wh-file';
export type OpaqueForm =
  | 'trusted.overlay.opaque'
  | 'user.overlay.opaque'
  | 'user.fuseoverlayfs.opaque'
  | typeof OPAQUE_MARKER;

const OPAQUE_XATTRS: OpaqueForm[] = ['trusted.overlay.opaque', 'user.overlay.opaque', 'user.fuseoverlayfs.opaque'];
const WHITEOUT_XATTRS = ['trusted.overlay.whiteout', 'user.overlay.whiteout'];
const ORIGIN_XATTRS = ['trusted.overlay.origin', 'user.overlay.origin'];

/** Xattr namespaces private to overlay implementations: never shown, never settable. */
const PRIVATE_XATTR_PREFIXES = ['trusted.overlay.', 'user.overlay.', 'user.fuseoverlayfs.'];

export function isPrivateXattr(name: string): boolean {
  return PRIVATE_XATTR_PREFIXES.some((p) => name.startsWith(p)) || isOverrideXattr(name);
}

/** Names that are markers in the OCI form and never appear in the merged view. */
export function isWhiteoutName(name: string): boolean {
  return name.startsWith(WHITEOUT_PREFIX);
}

export function isCharWhiteout(st: Stat): boolean {
  return isChr(st) && st.rdev === 0;
}

/** What a layer's copy of a directory says about merging with the layers below. */
export interface DirMarkers {
  /** Set when this copy is opaque: layers below are not consulted. */
  opaque?: OpaqueForm;
  /** overlay.opaque=x: entries may be xattr whiteouts. */
  xwhiteouts: boolean;
  /**
   * overlay.origin is set: an overlay copied this directory up (or it was
   * merged once), so it may hold whiteouts even with nothing below it now.
   * The kernel then treats it as "not pure upper" (OVL_WHITEOUTS).
   */
  origin?: boolean;
  /**
   * This layer's directory was made by this mount (a copy-up's new, empty
   * directory): it holds no `.wh.` file, since such names cannot be created
   * through the mount, so a lookup of an absent name need not look for one.
   * Never read from disk: a directory changed behind the mount is re-read
   * (after invalidate) without it.
   */
  noWhFiles?: boolean;
}

async function xattrValue(layer: Layer, p: LayerPath, name: string): Promise<Buffer | undefined> {
  try {
    return await layer.getxattr(p, name);
  } catch (err) {
    // ENODATA: not set; ENOTSUP/EOPNOTSUPP: the filesystem has no such namespace;
    // EPERM/EACCES: trusted.* unreadable without CAP_SYS_ADMIN.
    if (hasCode(err, 'ENODATA', 'ENOTSUP', 'EOPNOTSUPP', 'EPERM', 'EACCES')) return undefined;
    throw err;
  }
}

async function exists(layer: Layer, p: LayerPath): Promise<boolean> {
  return (await layer.lstatMaybe(p)) !== undefined;
}

/** Reads the opaque markers of a directory in one layer. */
export async function readDirMarkers(layer: Layer, dir: LayerPath): Promise<DirMarkers> {
  let names: string[];
  try {
    names = await layer.listxattr(dir);
  } catch (err) {
    if (!hasCode(err, 'ENOTSUP', 'EOPNOTSUPP')) throw err;
    names = [];
  }
  let xwhiteouts = false;
  const origin = ORIGIN_XATTRS.some((n) => names.includes(n)) || undefined;
  for (const form of OPAQUE_XATTRS) {
    if (!names.includes(form)) continue;
    const v = await xattrValue(layer, dir, form);
    if (v === undefined || v.length === 0) continue;
    if (v[0] === 0x79 /* y */) return { opaque: form, xwhiteouts: false, origin };
    if (v[0] === 0x78 /* x */) xwhiteouts = true;
  }
  if (await exists(layer, layerChild(dir, OPAQUE_MARKER))) return { opaque: OPAQUE_MARKER, xwhiteouts, origin };
  return { xwhiteouts, origin };
}

/**
 * Whether the entry st found at p in layer is itself a whiteout. parentMarkers
 * are those of the directory holding p in the same layer.
 */
export async function whiteoutFormOf(
  layer: Layer,
  p: LayerPath,
  st: Stat,
  parentMarkers: DirMarkers,
): Promise<WhiteoutForm | undefined> {
  if (isCharWhiteout(st)) return 'chardev';
  if (parentMarkers.xwhiteouts && isReg(st) && st.size === 0) {
    for (const name of WHITEOUT_XATTRS) {
      if ((await xattrValue(layer, p, name)) !== undefined) return 'xattr';
    }
  }
  return undefined;
}

/** Whether layer has an OCI ".wh.NAME" whiteout for name inside dir. */
export function hasWhFile(layer: Layer, dir: LayerPath, name: string): Promise<boolean> {
  return exists(layer, layerChild(dir, WHITEOUT_PREFIX + name));
}
