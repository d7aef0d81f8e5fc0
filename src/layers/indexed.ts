// A lower layer served from its persistent index (cache/lower-index.ts):
// lstat, readdir, readlink and xattrs come from SQLite, so walking the layer
// makes no system calls on it; file data (open/read) and statfs still go to
// the layer itself. Names that appear in the layer's root while mounted (a
// growing Nix store) are served from the layer directly until the next
// mount indexes them: they may still be being written when they appear.
import { fsError } from '../core/errors';
import type { DirEntry, Layer, LayerFile } from '../core/layer';
import type { LayerPath } from '../core/paths';
import type { Stat, StatFs } from '../core/stat';
import { unpackXattrs, type LowerIndex } from '../cache/lower-index';
import type { HostLayer } from './host';

export class IndexedLayer implements Layer {
  /** Root names to read from the layer itself (appeared since the index was opened). */
  private readonly direct = new Set<string>();
  /**
   * The packed xattrs of the row each stat handed out came from: a getxattr
   * given that stat back (the winner of a cached resolution) needs no query.
   * `ls -l` asks for security.selinux on every file, every time: that query
   * was the largest cost of a hot listing. Rows never change while open.
   */
  private readonly xattrsOf = new WeakMap<Stat, Buffer | null>();

  constructor(
    readonly host: HostLayer,
    private readonly index: LowerIndex,
  ) {}

  get root(): string {
    return this.host.root;
  }

  get calls() {
    return this.host.calls;
  }

  get queries(): number {
    return this.index.queries;
  }

  /** A name appeared in (or left) the layer's root while mounted. */
  rootChanged(name: string): void {
    this.direct.add(name);
  }

  private useHost(p: LayerPath): boolean {
    if (this.direct.size === 0 || p === '') return false;
    const i = p.indexOf('/');
    return this.direct.has(i < 0 ? p : p.slice(0, i));
  }

  async lstat(p: LayerPath): Promise<Stat> {
    const st = await this.lstatMaybe(p);
    if (st === undefined) throw fsError('ENOENT', 'lstat', p);
    return st;
  }

  async lstatMaybe(p: LayerPath): Promise<Stat | undefined> {
    if (this.useHost(p)) return this.host.lstatMaybe(p);
    const e = this.index.lookup(p);
    if (e === undefined) return undefined;
    this.xattrsOf.set(e.stat, e.xattrs);
    return e.stat;
  }

  async readdir(p: LayerPath): Promise<DirEntry[]> {
    if (this.useHost(p)) return this.host.readdir(p);
    const list = this.index.readdir(p);
    if (list === undefined) throw fsError(this.index.lookup(p) === undefined ? 'ENOENT' : 'ENOTDIR', 'readdir', p);
    if (p === '' && this.direct.size > 0) {
      // The root as it is now: indexed names plus what appeared since.
      const have = new Set(list.map((e) => e.name));
      for (const e of await this.host.readdir(p)) if (!have.has(e.name)) list.push(e);
    }
    return list;
  }

  async readlink(p: LayerPath): Promise<string> {
    if (this.useHost(p)) return this.host.readlink(p);
    const e = this.index.lookup(p);
    if (e === undefined) throw fsError('ENOENT', 'readlink', p);
    if (e.target === null) throw fsError('EINVAL', 'readlink', p);
    return e.target;
  }

  /** The packed xattrs of the indexed object at p (from `known` when it came from here). */
  private packedXattrs(p: LayerPath, known: Stat | undefined, op: string): Buffer | null {
    const packed = known === undefined ? undefined : this.xattrsOf.get(known);
    if (packed !== undefined) return packed;
    const e = this.index.lookup(p);
    if (e === undefined) throw fsError('ENOENT', op, p);
    return e.xattrs;
  }

  async getxattr(p: LayerPath, name: string, known?: Stat): Promise<Buffer> {
    const v = await this.getxattrMaybe(p, name, known);
    if (v === undefined) throw fsError('ENODATA', 'getxattr', p);
    return v;
  }

  async getxattrMaybe(p: LayerPath, name: string, known?: Stat): Promise<Buffer | undefined> {
    if (this.useHost(p)) return this.host.getxattrMaybe(p, name);
    return unpackXattrs(this.packedXattrs(p, known, 'getxattr')).get(name);
  }

  async listxattr(p: LayerPath, known?: Stat): Promise<string[]> {
    if (this.useHost(p)) return this.host.listxattr(p);
    const packed = this.packedXattrs(p, known, 'listxattr');
    return [...unpackXattrs(packed).keys()];
  }

  open(p: LayerPath, flags: number): Promise<LayerFile> {
    return this.host.open(p, flags);
  }

  statfs(p: LayerPath): Promise<StatFs> {
    return this.host.statfs(p);
  }
}
