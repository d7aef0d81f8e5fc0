// Branded path types. A MergedPath is what the kernel hands us ("/", "/a/b");
// a LayerPath is relative to a layer's root ("" for the root, "a/b"). The
// brands stop a host path or merged path being passed where a layer-relative
// one is expected.

export type MergedPath = string & { readonly __brand: 'MergedPath' };
export type LayerPath = string & { readonly __brand: 'LayerPath' };

export const ROOT = '/' as MergedPath;

/** Already normalized: absolute, no empty, '.' or '..' component, no trailing '/'. */
const NORMAL = /^(\/(?!\.\.?(\/|$))[^/]+)+$/;

/** Normalises "/a//b/" to "/a/b"; rejects "." and ".." components (FUSE never sends them). */
export function mergedPath(p: string): MergedPath {
  // Paths from the transport are normalized already: no split and join.
  if (p === '/' || NORMAL.test(p)) return p as MergedPath;
  const parts = p.split('/').filter((c) => c.length > 0);
  for (const c of parts) {
    if (c === '.' || c === '..') throw new Error(`path component '${c}' not allowed in '${p}'`);
  }
  return ('/' + parts.join('/')) as MergedPath;
}

export function layerPath(p: MergedPath): LayerPath {
  return p.slice(1) as LayerPath;
}

export function childPath(parent: MergedPath, name: string): MergedPath {
  return (parent === '/' ? `/${name}` : `${parent}/${name}`) as MergedPath;
}

export function layerChild(parent: LayerPath, name: string): LayerPath {
  return (parent === '' ? name : `${parent}/${name}`) as LayerPath;
}

export function parentOf(p: MergedPath): MergedPath {
  const i = p.lastIndexOf('/');
  return (i <= 0 ? '/' : p.slice(0, i)) as MergedPath;
}

export function baseName(p: MergedPath | LayerPath): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

/** The components of a merged path: "/a/b" -> ["a", "b"]; "/" -> []. */
export function components(p: MergedPath): string[] {
  return p === '/' ? [] : p.slice(1).split('/');
}
