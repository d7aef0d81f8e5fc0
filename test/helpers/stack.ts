// Layer stacks for tests: described once as data, written to disk in any of
// the on-disk forms (kernel form, or a mix of every whiteout and opaque form),
// and compared as whole-tree snapshots.
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { native } from '../../src/native';
import { rng } from './rng';

export type NodeSpec =
  | { t: 'f'; data?: string; mode?: number; uid?: number; gid?: number; x?: Record<string, string> }
  | { t: 'd'; mode?: number; uid?: number; gid?: number; opaque?: boolean; x?: Record<string, string> }
  | { t: 'l'; target: string }
  | { t: 'p' }
  | { t: 'w' };

/** One layer: path -> node. Parents not listed are plain 0755 directories. */
export type LayerSpec = Record<string, NodeSpec>;

export type WhiteoutForm = 'chardev' | 'xattr' | 'wh-file';
export type OpaqueForm = 'trusted' | 'user' | 'fuseoverlayfs' | 'marker';

export interface Forms {
  whiteout(layer: number, p: string): WhiteoutForm;
  opaque(layer: number, p: string): OpaqueForm;
}

/** What kernel overlayfs (no userxattr) reads: chardev and xattr whiteouts, trusted opaque. */
export const kernelForms: Forms = {
  whiteout: (l, p) => (hashOf(`${l}:${p}`) % 3 === 0 ? 'xattr' : 'chardev'),
  opaque: () => 'trusted',
};

/** Every form layerfs reads, spread over the entries. */
/** What kernel overlayfs and layerfs themselves write into an upper layer. */
export const writtenForms: Forms = {
  whiteout: () => 'chardev',
  opaque: () => 'trusted',
};

export const mixedForms: Forms = {
  whiteout: (l, p) => (['chardev', 'xattr', 'wh-file'] as const)[hashOf(`${l}:${p}`) % 3],
  opaque: (l, p) => (['trusted', 'user', 'fuseoverlayfs', 'marker'] as const)[hashOf(`o${l}:${p}`) % 4],
};

function hashOf(s: string): number {
  return createHash('md5').update(s).digest().readUInt32LE(0);
}

const S_IFCHR = 0o020000;
const S_IFIFO = 0o010000;

function setx(p: string, name: string, value: string): void {
  native().lsetxattr(p, name, Buffer.from(value), 0);
}

/** Writes the layers under base/<i>; returns their directories, top layer first. */
export function writeStack(base: string, layers: LayerSpec[], forms: Forms): string[] {
  return layers.map((spec, li) => {
    const root = path.join(base, `layer${li}`);
    fs.mkdirSync(root, { recursive: true });
    const entries = Object.entries(spec).sort(([a], [b]) => a.localeCompare(b));
    const xwhiteoutDirs = new Set<string>();
    for (const [p, n] of entries) {
      const abs = path.join(root, p);
      fs.mkdirSync(path.dirname(abs), { recursive: true });
      switch (n.t) {
        case 'd':
          fs.mkdirSync(abs, { recursive: true });
          break;
        case 'f':
          fs.writeFileSync(abs, n.data ?? '');
          break;
        case 'l':
          fs.symlinkSync(n.target, abs);
          break;
        case 'p':
          native().mknod(abs, S_IFIFO | 0o644, 0, 0);
          break;
        case 'w':
          switch (forms.whiteout(li, p)) {
            case 'chardev':
              native().mknod(abs, S_IFCHR, 0, 0);
              break;
            case 'xattr':
              fs.writeFileSync(abs, '');
              setx(abs, 'trusted.overlay.whiteout', '');
              xwhiteoutDirs.add(path.dirname(abs));
              break;
            case 'wh-file':
              fs.writeFileSync(path.join(path.dirname(abs), `.wh.${path.basename(abs)}`), '');
              break;
          }
          break;
      }
    }
    for (const d of xwhiteoutDirs) setx(d, 'trusted.overlay.opaque', 'x');
    // Attributes last, deepest first, so that directory modes do not block creation.
    for (const [p, n] of entries.reverse()) {
      const abs = path.join(root, p);
      if (n.t === 'd' && n.opaque) {
        const form = forms.opaque(li, p);
        if (form === 'marker') fs.writeFileSync(path.join(abs, '.wh..wh..opq'), '');
        else setx(abs, form === 'trusted' ? 'trusted.overlay.opaque' : form === 'user' ? 'user.overlay.opaque' : 'user.fuseoverlayfs.opaque', 'y');
      }
      if (n.t === 'f' || n.t === 'd') {
        for (const [k, v] of Object.entries(n.x ?? {})) setx(abs, k, v);
        if (n.uid !== undefined || n.gid !== undefined) fs.lchownSync(abs, n.uid ?? 0, n.gid ?? 0);
        if (n.mode !== undefined) fs.chmodSync(abs, n.mode);
      }
    }
    return root;
  });
}

/** Differences between two path -> description maps, one readable line each, sorted. */
export function diffTrees(a: Record<string, string>, b: Record<string, string>, an = 'kernel', bn = 'layerfs'): string[] {
  const out: string[] = [];
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (a[k] !== b[k]) out.push(`${k}: ${an}=${a[k] ?? '(absent)'} ${bn}=${b[k] ?? '(absent)'}`);
  }
  return out.sort();
}

/** A random stack whose names collide across layers often. */
export function randomStack(seed: number, nLayers: number): LayerSpec[] {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const names = ['a', 'b', 'c', 'd', 'e', 'f'];
  const owners = [0, 1000, 65534];
  const gen = (spec: LayerSpec, dir: string, depth: number, opaqueParent: boolean) => {
    for (const name of names) {
      if (r() < 0.45) continue;
      const p = dir ? `${dir}/${name}` : name;
      const roll = r();
      if (roll < 0.4 && depth < 3) {
        const opaque = r() < 0.15;
        spec[p] = { t: 'd', opaque, mode: pick([0o755, 0o750, 0o1777]), uid: pick(owners), gid: pick(owners) };
        gen(spec, p, depth + 1, opaque);
      } else if (roll < 0.7) {
        spec[p] = {
          t: 'f',
          data: `${p} ${seed} `.repeat(Math.floor(r() * 50)),
          mode: pick([0o644, 0o600, 0o755, 0o4755]),
          uid: pick(owners),
          gid: pick(owners),
          x: r() < 0.3 ? { 'user.test': `v${Math.floor(r() * 100)}` } : {},
        };
      } else if (roll < 0.85 && !opaqueParent) {
        spec[p] = { t: 'w' };
      } else if (roll < 0.95) {
        spec[p] = { t: 'l', target: pick(['a', '../b', '/etc/hostname', 'c/d']) };
      } else {
        spec[p] = { t: 'p' };
      }
    }
  };
  return Array.from({ length: nLayers }, () => {
    const spec: LayerSpec = {};
    gen(spec, '', 0, false);
    return spec;
  });
}

// The whole-tree snapshot is plain JavaScript (tree.js), so that a test child
// running as another user, without ts-jest, takes the same one.
export { snapshot, type Snapshot, type SnapshotOptions } from './tree';

/** Xattrs the kernel writes that carry its own identifiers (file handles, uuids), not state layerfs reproduces. */
const KERNEL_IDENTITY_XATTRS = new Set(['trusted.overlay.origin', 'trusted.overlay.impure', 'trusted.overlay.uuid', 'trusted.overlay.nlink']);

/**
 * The raw contents of a layer directory (not through a mount): every entry with
 * type, owner, mode, size, content hash, device numbers and every xattr,
 * overlay markers included. mtime in ms is kept separately.
 */
export function layerSnapshot(root: string): { tree: Record<string, string>; mtimes: Record<string, bigint> } {
  const tree: Record<string, string> = {};
  const mtimes: Record<string, bigint> = {};
  const walk = (rel: string) => {
    const abs = rel ? path.join(root, rel) : root;
    const st = fs.lstatSync(abs, { bigint: true });
    const type = Number(st.mode) & 0o170000;
    const parts = [`mode=${Number(st.mode).toString(8)}`, `uid=${st.uid}`, `gid=${st.gid}`];
    // The kernel makes its whiteouts hard links of one shared inode; the link count is not format.
    const whiteout = type === 0o020000 && st.rdev === 0n;
    if (type !== 0o040000) parts.push(`size=${st.size}`, ...(whiteout ? [] : [`nlink=${st.nlink}`]));
    if (type === 0o020000 || type === 0o060000) parts.push(`rdev=${st.rdev}`);
    if (type === 0o120000) parts.push(`target=${fs.readlinkSync(abs)}`);
    if (type === 0o100000) parts.push(`sha=${createHash('sha256').update(fs.readFileSync(abs)).digest('hex').slice(0, 16)}`);
    for (const x of native().llistxattr(abs).sort()) {
      if (!KERNEL_IDENTITY_XATTRS.has(x)) parts.push(`${x}=${native().lgetxattr(abs, x).toString()}`);
    }
    tree[rel || '/'] = parts.join(' ');
    mtimes[rel || '/'] = st.mtimeNs;
    if (type === 0o040000) for (const n of fs.readdirSync(abs).sort()) walk(rel ? `${rel}/${n}` : n);
  };
  walk('');
  return { tree, mtimes };
}

/** Every path named in a stack, parents included, sorted. */
export function stackPaths(layers: LayerSpec[]): string[] {
  const all = new Set<string>();
  for (const spec of layers) {
    for (const p of Object.keys(spec)) {
      const parts = p.split('/');
      for (let i = 1; i <= parts.length; i++) all.add(parts.slice(0, i).join('/'));
    }
  }
  return [...all].sort();
}
