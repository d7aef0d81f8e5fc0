// MemoryLayer: a Layer held in memory, for unit tests of the core. It can hold
// what an unprivileged test cannot create on disk (char 0/0 whiteouts,
// trusted.* xattrs) and reports the same errors a host directory would.
import { fsError, hasCode } from '../core/errors';
import type { DirEntry, Layer, LayerFile } from '../core/layer';
import type { LayerPath } from '../core/paths';
import { S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, type Stat, type StatFs } from '../core/stat';

interface MemNode {
  mode: number;
  rdev: number;
  data: Buffer;
  target: string;
  xattrs: Map<string, Buffer>;
  children: Map<string, MemNode> | undefined;
  ino: bigint;
}

let nextIno = 1000n;

export class MemoryLayer implements Layer {
  private readonly rootNode: MemNode;

  constructor(readonly root: string, private readonly dev = 1n) {
    this.rootNode = this.node(S_IFDIR | 0o755);
  }

  private node(mode: number, init: Partial<MemNode> = {}): MemNode {
    return {
      mode,
      rdev: 0,
      data: Buffer.alloc(0),
      target: '',
      xattrs: new Map(),
      children: (mode & S_IFMT) === S_IFDIR ? new Map() : undefined,
      ino: nextIno++,
      ...init,
    };
  }

  private walk(p: string, syscall: string): MemNode {
    let cur = this.rootNode;
    if (p === '') return cur;
    for (const c of p.split('/')) {
      if (cur.children === undefined) throw fsError('ENOTDIR', syscall, p);
      const next = cur.children.get(c);
      if (next === undefined) throw fsError('ENOENT', syscall, p);
      cur = next;
    }
    return cur;
  }

  private add(p: string, n: MemNode): MemNode {
    const i = p.lastIndexOf('/');
    const parent = i < 0 ? this.rootNode : this.mkdirp(p.slice(0, i));
    parent.children!.set(p.slice(i + 1), n);
    return n;
  }

  // --- building (tests) ---
  mkdirp(p: string, mode = 0o755): MemNode {
    let cur = this.rootNode;
    if (p === '') return cur;
    for (const c of p.split('/')) {
      let next = cur.children!.get(c);
      if (next === undefined) {
        next = this.node(S_IFDIR | mode);
        cur.children!.set(c, next);
      }
      cur = next;
    }
    return cur;
  }
  file(p: string, content = '', mode = 0o644): this {
    this.add(p, this.node(S_IFREG | mode, { data: Buffer.from(content) }));
    return this;
  }
  symlink(p: string, target: string): this {
    this.add(p, this.node(S_IFLNK | 0o777, { target }));
    return this;
  }
  whiteout(p: string): this {
    this.add(p, this.node(S_IFCHR, { rdev: 0 }));
    return this;
  }
  setxattr(p: string, name: string, value: string): this {
    this.walk(p, 'setxattr').xattrs.set(name, Buffer.from(value));
    return this;
  }

  // --- Layer ---
  async lstat(p: LayerPath): Promise<Stat> {
    const n = this.walk(p, 'lstat');
    const size = n.children ? 4096 : (n.mode & S_IFMT) === S_IFLNK ? n.target.length : n.data.length;
    return {
      dev: this.dev, ino: n.ino, mode: n.mode, nlink: n.children ? 2 : 1, uid: 0, gid: 0, rdev: n.rdev,
      size, blocks: Math.ceil(size / 512), blksize: 4096, atimeNs: 0n, mtimeNs: 0n, ctimeNs: 0n,
    };
  }
  async lstatMaybe(p: LayerPath): Promise<Stat | undefined> {
    try {
      return await this.lstat(p);
    } catch (err) {
      if (hasCode(err, 'ENOENT', 'ENOTDIR')) return undefined;
      throw err;
    }
  }
  async readdir(p: LayerPath): Promise<DirEntry[]> {
    const n = this.walk(p, 'readdir');
    if (!n.children) throw fsError('ENOTDIR', 'readdir', p);
    return [...n.children].map(([name, c]) => ({ name, type: c.mode & S_IFMT }));
  }
  async readlink(p: LayerPath): Promise<string> {
    const n = this.walk(p, 'readlink');
    if ((n.mode & S_IFMT) !== S_IFLNK) throw fsError('EINVAL', 'readlink', p);
    return n.target;
  }
  async getxattr(p: LayerPath, name: string): Promise<Buffer> {
    const v = await this.getxattrMaybe(p, name);
    if (v === undefined) throw fsError('ENODATA', 'getxattr', p);
    return v;
  }
  async getxattrMaybe(p: LayerPath, name: string): Promise<Buffer | undefined> {
    return this.walk(p, 'getxattr').xattrs.get(name);
  }
  async listxattr(p: LayerPath): Promise<string[]> {
    return [...this.walk(p, 'listxattr').xattrs.keys()];
  }
  async open(p: LayerPath): Promise<LayerFile> {
    const n = this.walk(p, 'open');
    if (n.children) throw fsError('EISDIR', 'open', p);
    return {
      read: async (buf, offset, length, position) => n.data.copy(buf, offset, position, Math.min(n.data.length, position + length)),
      close: async () => undefined,
    };
  }
  async statfs(): Promise<StatFs> {
    return { type: 0, bsize: 4096, blocks: 1000, bfree: 500, bavail: 500, files: 1000, ffree: 500, namemax: 255 };
  }
}
