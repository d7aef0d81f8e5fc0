// The kernel's inode handles (FUSE node ids) and the merged path each stands
// for. The kernel holds a node id from the LOOKUP (or create) that returned it
// until it FORGETs it as many times; while held, a lookup of the same path
// must return the same id. Renames move a node and everything under it;
// unlink/rmdir detach it (it stays valid for handles already open).
import { type MergedPath, ROOT } from '../core/paths';
import { FUSE_ROOT_ID } from './protocol';

export interface Node {
  readonly id: number;
  /** null once unlinked: the node lives on only through open handles. */
  path: MergedPath | null;
  nlookup: number;
  /** mtime and size at the last open, for auto_cache. */
  stamp?: string;
}

export class NodeTable {
  private readonly byId = new Map<number, Node>();
  private readonly byPath = new Map<string, Node>();
  private nextId = FUSE_ROOT_ID + 1;

  constructor() {
    const root: Node = { id: FUSE_ROOT_ID, path: ROOT, nlookup: 1 };
    this.byId.set(root.id, root);
    this.byPath.set(ROOT, root);
  }

  /** The path of a node the kernel refers to; undefined when unknown or unlinked. */
  pathOf(id: number): MergedPath | undefined {
    return this.byId.get(id)?.path ?? undefined;
  }

  idOf(path: MergedPath): number | undefined {
    return this.byPath.get(path)?.id;
  }

  /** Every node that has a path: [id, path]. */
  *entries(): Iterable<[number, MergedPath]> {
    for (const [p, n] of this.byPath) yield [n.id, p as MergedPath];
  }

  /** Sets the node's open stamp; true when it is unchanged since the last open. */
  stamp(id: number, st: { mtimeNs: bigint; size: number; ino: bigint }): boolean {
    const n = this.byId.get(id);
    if (n === undefined) return false;
    const s = `${st.ino}:${st.mtimeNs}:${st.size}`;
    const same = n.stamp === s;
    n.stamp = s;
    return same;
  }

  /** A lookup that the kernel will hold: the node for path, with one more reference. */
  remember(path: MergedPath): Node {
    let n = this.byPath.get(path);
    if (n === undefined) {
      n = { id: this.nextId++, path, nlookup: 0 };
      this.byId.set(n.id, n);
      this.byPath.set(path, n);
    }
    n.nlookup++;
    return n;
  }

  forget(id: number, count: number): void {
    if (id === FUSE_ROOT_ID) return;
    const n = this.byId.get(id);
    if (n === undefined) return;
    n.nlookup -= count;
    if (n.nlookup > 0) return;
    this.byId.delete(id);
    if (n.path !== null && this.byPath.get(n.path) === n) this.byPath.delete(n.path);
  }

  /** path (and everything under it) no longer exists in the merged view. */
  detach(path: MergedPath): void {
    for (const n of this.under(path)) {
      this.byPath.delete(n.path!);
      n.path = null;
    }
  }

  /** from was renamed to to: whatever was at to is gone, from's subtree moves. */
  move(from: MergedPath, to: MergedPath): void {
    this.detach(to);
    const moving = this.under(from);
    for (const n of moving) this.byPath.delete(n.path!);
    for (const n of moving) {
      n.path = (to + n.path!.slice(from.length)) as MergedPath;
      this.byPath.set(n.path, n);
    }
  }

  /** RENAME_EXCHANGE: the two subtrees trade places. */
  exchange(a: MergedPath, b: MergedPath): void {
    const na = this.under(a);
    const nb = this.under(b);
    for (const n of [...na, ...nb]) this.byPath.delete(n.path!);
    for (const n of na) n.path = (b + n.path!.slice(a.length)) as MergedPath;
    for (const n of nb) n.path = (a + n.path!.slice(b.length)) as MergedPath;
    for (const n of [...na, ...nb]) this.byPath.set(n.path!, n);
  }

  private under(path: MergedPath): Node[] {
    const out: Node[] = [];
    const prefix = path === ROOT ? '/' : path + '/';
    for (const [p, n] of this.byPath) if (p === path || p.startsWith(prefix)) out.push(n);
    return out;
  }
}
