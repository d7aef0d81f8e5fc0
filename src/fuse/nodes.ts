// The kernel's inode handles (FUSE node ids) and the merged path each stands
// for. The kernel holds a node id from the LOOKUP (or create, or READDIRPLUS
// entry) that returned it until it FORGETs it as many times; while held, a
// lookup of the same name must return the same id.
//
// A node stores its parent node and its own name, not its path: a path is
// built on demand by walking up. So a rename moves a whole subtree by
// re-keying one node, an unlink detaches one node (everything below it loses
// its path with it), and a node costs the same at any depth. Nodes are found
// by (parent id, name).
//
// The kernel keeps every inode it has seen while memory lasts (timeouts are
// long when it caches), so this table would grow with every name ever looked
// up. Past `maxNodes`, evictable() names the least recently looked-up nodes
// that have no nodes below them; the session asks the kernel to drop their
// dentries (FUSE_NOTIFY_INVAL_ENTRY), and the FORGET that follows removes them.
import { type MergedPath, ROOT, components } from '../core/paths';
import type { Stat } from '../core/stat';
import { FUSE_ROOT_ID } from './protocol';

export interface Node {
  readonly id: number;
  /** The directory node this name is in; null for the root and once detached. */
  parent: Node | null;
  name: string;
  /** Lookups the kernel holds. */
  nlookup: number;
  /** Attached nodes keyed under this one. */
  kids: number;
  /** mtime and size at the last open, for auto_cache. */
  stamp: string | undefined;
  /** The kernel was asked to drop it; not asked again until it is looked up again. */
  evicting: boolean;
  /**
   * A directory's attributes as last answered, valid while the overlay's
   * cache version is still attrVersion (no mutation anywhere since).
   */
  attr?: Stat;
  attrVersion?: number;
}

function key(parentId: number, name: string): string {
  return `${parentId}/${name}`;
}

export class NodeTable {
  /** Every node, least recently looked up first. */
  private readonly byId = new Map<number, Node>();
  /** Attached nodes by (parent id, name). */
  private readonly byKey = new Map<string, Node>();
  private readonly root: Node = { id: FUSE_ROOT_ID, parent: null, name: '', nlookup: 1, kids: 0, stamp: undefined, evicting: false };
  private nextId = FUSE_ROOT_ID + 1;

  constructor() {
    this.byId.set(this.root.id, this.root);
  }

  get size(): number {
    return this.byId.size;
  }

  /** The path of a node the kernel refers to; undefined when unknown or unlinked (itself or an ancestor). */
  pathOf(id: number): MergedPath | undefined {
    const n = this.byId.get(id);
    return n === undefined ? undefined : this.pathOfNode(n);
  }

  private pathOfNode(n: Node): MergedPath | undefined {
    if (n === this.root) return ROOT;
    const names: string[] = [];
    let a: Node | null = n;
    for (; a !== null && a !== this.root; a = a.parent) names.push(a.name);
    if (a === null) return undefined; // detached somewhere on the way up
    names.reverse();
    return ('/' + names.join('/')) as MergedPath;
  }

  idOf(path: MergedPath): number | undefined {
    return this.find(path)?.id;
  }

  /** The node for name in directory node parentId. */
  idIn(parentId: number, name: string): number | undefined {
    return this.byKey.get(key(parentId, name))?.id;
  }

  /** The attached node at path, walking from the root. */
  private find(path: MergedPath): Node | undefined {
    let n: Node | undefined = this.root;
    for (const name of components(path)) {
      n = this.byKey.get(key(n.id, name));
      if (n === undefined) return undefined;
    }
    return n;
  }

  /** Every node that has a path: [id, path]. */
  *entries(): Iterable<[number, MergedPath]> {
    for (const n of this.byId.values()) {
      const p = this.pathOfNode(n);
      if (p !== undefined) yield [n.id, p];
    }
  }

  /** Attributes kept on node id at cache version `version`, if still current. */
  attrOf(id: number, version: number): Stat | undefined {
    const n = this.byId.get(id);
    return n !== undefined && n.attrVersion === version ? n.attr : undefined;
  }

  keepAttr(id: number, st: Stat, version: number): void {
    const n = this.byId.get(id);
    if (n === undefined) return;
    n.attr = st;
    n.attrVersion = version;
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

  /**
   * A lookup of name in directory node parentId that the kernel will hold:
   * the node, with one more reference. undefined when the parent is unknown.
   */
  remember(parentId: number, name: string): Node | undefined {
    const k = key(parentId, name);
    let n = this.byKey.get(k);
    if (n === undefined) {
      const parent = this.byId.get(parentId);
      if (parent === undefined) return undefined;
      n = { id: this.nextId++, parent, name, nlookup: 0, kids: 0, stamp: undefined, evicting: false };
      parent.kids++;
      this.byKey.set(k, n);
    } else {
      // Most recently looked up goes last (eviction takes from the front).
      this.byId.delete(n.id);
      n.evicting = false;
    }
    this.byId.set(n.id, n);
    n.nlookup++;
    return n;
  }

  forget(id: number, count: number): void {
    const n = this.byId.get(id);
    if (n === undefined || n === this.root) return;
    n.nlookup -= count;
    this.release(n);
  }

  /**
   * Removes a node nobody refers to any more: the kernel holds no lookup and
   * no node is keyed under it. The kernel forgets children before their
   * directory; a node forgotten early stays while it has children, so their
   * paths still resolve. Releasing a node may make its parent releasable.
   */
  private release(n: Node | null): void {
    for (let a = n; a !== null && a !== this.root && a.nlookup <= 0 && a.kids === 0; ) {
      this.byId.delete(a.id);
      const up: Node | null = a.parent;
      if (up !== null) {
        this.byKey.delete(key(up.id, a.name));
        up.kids--;
      }
      a = up;
    }
  }

  /** Unkeys an attached node from its parent; returns the former parent. */
  private unkey(n: Node): Node {
    const parent = n.parent!;
    this.byKey.delete(key(parent.id, n.name));
    parent.kids--;
    n.parent = null;
    return parent;
  }

  private keyUnder(n: Node, parent: Node, name: string): void {
    n.parent = parent;
    n.name = name;
    parent.kids++;
    this.byKey.set(key(parent.id, name), n);
  }

  /**
   * The name (parent id, name) no longer exists in the merged view. Its node
   * lives on, pathless, while the kernel holds it (open handles); so do the
   * nodes below it.
   */
  detach(parentId: number, name: string): void {
    const n = this.byKey.get(key(parentId, name));
    if (n === undefined) return;
    const parent = this.unkey(n);
    this.release(n);
    this.release(parent);
  }

  /** Renamed: whatever was at the target is gone, the source (and its subtree) moves. */
  move(fromParent: number, fromName: string, toParent: number, toName: string): void {
    if (fromParent === toParent && fromName === toName) return;
    this.detach(toParent, toName);
    const n = this.byKey.get(key(fromParent, fromName));
    if (n === undefined) return;
    const dst = this.byId.get(toParent);
    const old = this.unkey(n);
    if (dst !== undefined) this.keyUnder(n, dst, toName);
    else this.release(n);
    this.release(old);
  }

  /** RENAME_EXCHANGE: the two names trade nodes. */
  exchange(aParent: number, aName: string, bParent: number, bName: string): void {
    const pa = this.byId.get(aParent);
    const pb = this.byId.get(bParent);
    if (pa === undefined || pb === undefined) return;
    const a = this.byKey.get(key(aParent, aName));
    const b = this.byKey.get(key(bParent, bName));
    if (a !== undefined) this.unkey(a);
    if (b !== undefined) this.unkey(b);
    if (a !== undefined) this.keyUnder(a, pb, bName);
    if (b !== undefined) this.keyUnder(b, pa, aName);
    this.release(pa);
    this.release(pb);
  }

  /**
   * Up to `count` nodes the kernel could drop to bring the table back under a
   * bound: least recently looked up first, attached, with nothing below them,
   * not already being evicted. Each is marked evicting; returns [parent id, name].
   */
  evictable(count: number): Array<[number, string]> {
    const out: Array<[number, string]> = [];
    for (const n of this.byId.values()) {
      if (out.length >= count) break;
      if (n === this.root || n.parent === null || n.kids > 0 || n.evicting || n.nlookup <= 0) continue;
      n.evicting = true;
      out.push([n.parent.id, n.name]);
    }
    return out;
  }
}
