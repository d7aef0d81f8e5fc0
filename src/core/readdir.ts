// Merged readdir: the union of a merged directory's layers, top-down, each name
// once, with whiteouts and every marker file removed. It follows the same rules
// as lookup (lookup.ts), so that every listed name resolves and no resolvable
// name is missing:
//   - a name seen in a higher layer hides the same name below;
//   - a whiteout (chardev or xattr form) hides the name in its layer and below;
//   - ".wh.NAME" hides NAME in the layers below its own, while a real NAME in
//     the same layer still wins (lookup consults the marker only when NAME is absent);
//   - ".wh..wh..opq" and other ".wh." names are never listed.
import { hasCode } from './errors';
import type { Layer } from './layer';
import type { Resolution } from './lookup';
import { layerChild, layerPath } from './paths';
import { S_IFCHR, S_IFMT, S_IFREG } from './stat';
import { isWhiteoutName, OPAQUE_MARKER, WHITEOUT_PREFIX, whiteoutFormOf } from './whiteout';

export interface MergedDirEntry {
  name: string;
  /** S_IFMT bits of the winning entry. */
  type: number;
  /** Index of the layer the entry comes from. */
  layer: number;
}

export async function readMergedDir(layers: readonly Layer[], dir: Resolution): Promise<MergedDirEntry[]> {
  const decided = new Set<string>();
  const out: MergedDirEntry[] = [];
  const dirLp = layerPath(dir.path);
  for (const e of dir.entries) {
    const layer = layers[e.layer];
    const markers = e.markers ?? { xwhiteouts: false };
    const hideBelow: string[] = [];
    for (const d of await layer.readdir(dirLp)) {
      if (isWhiteoutName(d.name)) {
        if (d.name !== OPAQUE_MARKER) hideBelow.push(d.name.slice(WHITEOUT_PREFIX.length));
        continue;
      }
      if (decided.has(d.name)) continue;
      decided.add(d.name);
      let type = d.type;
      // Only entries that could be whiteouts (or of unknown type) need an lstat.
      if (type === 0 || type === S_IFCHR || (markers.xwhiteouts && type === S_IFREG)) {
        const lp = layerChild(dirLp, d.name);
        let st;
        try {
          st = await layer.lstat(lp);
        } catch (err) {
          if (hasCode(err, 'ENOENT')) continue; // removed since readdir
          throw err;
        }
        if ((await whiteoutFormOf(layer, lp, st, markers)) !== undefined) continue;
        type = st.mode & S_IFMT;
      }
      out.push({ name: d.name, type, layer: e.layer });
    }
    for (const n of hideBelow) decided.add(n);
  }
  return out;
}
