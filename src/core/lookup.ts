// Lookup: what a merged path resolves to, and why. A pure function of the
// layers (no caching here), one path component at a time, as the kernel's
// ovl_lookup does:
//   - walk the layers in which the parent is a directory, top-down;
//   - a whiteout hides the name in every layer below it;
//   - a non-directory found first wins and hides everything below;
//   - a directory merges with same-named directories below it, until one is
//     opaque, or a layer below has a whiteout or a non-directory of that name.
// The result records which layers make up the object and what stopped the walk,
// which is exactly what tracing and `explain` need.
import { fsError } from './errors';
import type { Layer } from './layer';
import { childPath, components, layerChild, layerPath, type LayerPath, type MergedPath, ROOT } from './paths';
import { isDir, type Stat } from './stat';
import {
  hasWhFile,
  isWhiteoutName,
  readDirMarkers,
  whiteoutFormOf,
  type DirMarkers,
  type OpaqueForm,
  type WhiteoutForm,
} from './whiteout';

/** One layer's part of a merged object. */
export interface LayerEntry {
  layer: number;
  stat: Stat;
  /** For directories: the markers of this layer's copy. */
  markers?: DirMarkers;
}

export type StopReason =
  | { kind: 'whiteout'; layer: number; form: WhiteoutForm }
  | { kind: 'opaque'; layer: number; form: OpaqueForm }
  | { kind: 'non-directory'; layer: number }
  | { kind: 'non-directory-below'; layer: number }
  | { kind: 'reserved-name' };

export interface Resolution {
  path: MergedPath;
  /** The layers holding this object, top-down. [0] is the winner; empty means absent. */
  entries: LayerEntry[];
  /** What ended the walk down the layers, if anything did before the bottom. */
  stop?: StopReason;
}

export function winner(r: Resolution): LayerEntry | undefined {
  return r.entries[0];
}

/** A directory made of more than one layer. */
export function isMerged(r: Resolution): boolean {
  return r.entries.length > 1;
}

/**
 * What r resolves to once its winner has been copied up as the upper object
 * `upper`, without reading the layers again. A copy-up makes an unmarked upper
 * copy (overlay xattrs are not copied, and a new directory is empty), so
 * resolveChild would find: for a directory, the copy on top of the same
 * layers as before (still merged, nothing in it hides anything below); for
 * anything else, the copy alone.
 */
export function withUpperCopy(r: Resolution, upper: Stat): Resolution {
  if (isDir(upper)) return { ...r, entries: [{ layer: 0, stat: upper, markers: { xwhiteouts: false, noWhFiles: true } }, ...r.entries] };
  return { path: r.path, entries: [{ layer: 0, stat: upper }], stop: { kind: 'non-directory', layer: 0 } };
}

/**
 * The root: every layer's root directory, merged. Like the kernel, opaque
 * markers on a layer's root are not consulted: the root always merges all layers.
 */
export async function resolveRoot(layers: readonly Layer[]): Promise<Resolution> {
  const entries: LayerEntry[] = [];
  for (let i = 0; i < layers.length; i++) {
    const stat = await layers[i].lstat('' as LayerPath);
    const markers = await readDirMarkers(layers[i], '' as LayerPath);
    entries.push({ layer: i, stat, markers: { xwhiteouts: markers.xwhiteouts } });
  }
  return { path: ROOT, entries };
}

/** Resolves name inside the directory parent. parent must be a present directory. */
export async function resolveChild(layers: readonly Layer[], parent: Resolution, name: string): Promise<Resolution> {
  const path = childPath(parent.path, name);
  if (isWhiteoutName(name)) return { path, entries: [], stop: { kind: 'reserved-name' } };
  const parentLp = layerPath(parent.path);
  const lp = layerChild(parentLp, name);
  const entries: LayerEntry[] = [];
  const last = parent.entries.length - 1;
  for (let i = 0; i <= last; i++) {
    const pe = parent.entries[i];
    const layer = layers[pe.layer];
    const stat = await layer.lstatMaybe(lp);
    if (stat === undefined) {
      // Only consulted when the name itself is absent: a real entry in the same
      // layer wins over its own ".wh." marker. In the lowest directory of the
      // merge it would hide nothing, and a directory this mount made has none:
      // not looked for (a negative lookup there costs one lstat, not two).
      if (i < last && !pe.markers?.noWhFiles && (await hasWhFile(layer, parentLp, name))) {
        return { path, entries, stop: { kind: 'whiteout', layer: pe.layer, form: 'wh-file' } };
      }
      continue;
    }
    const form = await whiteoutFormOf(layer, lp, stat, pe.markers ?? { xwhiteouts: false });
    if (form !== undefined) return { path, entries, stop: { kind: 'whiteout', layer: pe.layer, form } };
    if (!isDir(stat)) {
      if (entries.length === 0) {
        entries.push({ layer: pe.layer, stat });
        return { path, entries, stop: { kind: 'non-directory', layer: pe.layer } };
      }
      return { path, entries, stop: { kind: 'non-directory-below', layer: pe.layer } };
    }
    const markers = await readDirMarkers(layer, lp);
    entries.push({ layer: pe.layer, stat, markers });
    if (markers.opaque !== undefined) {
      return { path, entries, stop: { kind: 'opaque', layer: pe.layer, form: markers.opaque } };
    }
  }
  return { path, entries };
}

/**
 * Resolves a whole path. Throws ENOENT if a component is absent and ENOTDIR if
 * a non-final component is not a directory; returns the final resolution,
 * which may be absent (entries empty) only for the last component when
 * allowAbsent is set.
 */
export async function resolvePath(
  layers: readonly Layer[],
  root: Resolution,
  path: MergedPath,
  allowAbsent = false,
): Promise<Resolution> {
  const names = components(path);
  let cur = root;
  for (let i = 0; i < names.length; i++) {
    const top = winner(cur);
    if (top === undefined) throw fsError('ENOENT', 'lookup', cur.path);
    if (!isDir(top.stat)) throw fsError('ENOTDIR', 'lookup', cur.path);
    cur = await resolveChild(layers, cur, names[i]);
  }
  if (!allowAbsent && cur.entries.length === 0) throw fsError('ENOENT', 'lookup', path);
  return cur;
}
