// HostLayer: a Layer over a directory of the host filesystem. Paths are
// relative to the layer root and joined as strings; the overlay only asks for
// children of entries it has seen to be real directories in this layer, so no
// symlink inside the layer is followed (see core/layer.ts).
// xattrs go through the native addon (lgetxattr & co. are fast, synchronous
// metadata calls); everything else through Node's asynchronous fs.
import { promises as fsp, type BigIntStats, type Dirent } from 'fs';
import { asFsError } from '../core/errors';
import type { DirEntry, Layer, LayerFile } from '../core/layer';
import type { LayerPath } from '../core/paths';
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK, type Stat, type StatFs } from '../core/stat';
import { native } from '../native';

export function statFromNode(s: BigIntStats): Stat {
  return {
    dev: s.dev,
    ino: s.ino,
    mode: Number(s.mode),
    nlink: Number(s.nlink),
    uid: Number(s.uid),
    gid: Number(s.gid),
    rdev: Number(s.rdev),
    size: Number(s.size),
    blocks: Number(s.blocks),
    blksize: Number(s.blksize),
    atimeNs: s.atimeNs,
    mtimeNs: s.mtimeNs,
    ctimeNs: s.ctimeNs,
  };
}

function direntType(d: Dirent): number {
  if (d.isFile()) return S_IFREG;
  if (d.isDirectory()) return S_IFDIR;
  if (d.isSymbolicLink()) return S_IFLNK;
  if (d.isCharacterDevice()) return S_IFCHR;
  if (d.isBlockDevice()) return S_IFBLK;
  if (d.isFIFO()) return S_IFIFO;
  if (d.isSocket()) return S_IFSOCK;
  return 0;
}

class HostFile implements LayerFile {
  constructor(private readonly fh: fsp.FileHandle) {}
  async read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    const { bytesRead } = await this.fh.read(buf, offset, length, position);
    return bytesRead;
  }
  close(): Promise<void> {
    return this.fh.close();
  }
}

export class HostLayer implements Layer {
  constructor(readonly root: string) {}

  /** The host path of a layer path. */
  hostPath(p: LayerPath): string {
    return p === '' ? this.root : `${this.root}/${p}`;
  }

  async lstat(p: LayerPath): Promise<Stat> {
    return statFromNode(await fsp.lstat(this.hostPath(p), { bigint: true }));
  }

  async readdir(p: LayerPath): Promise<DirEntry[]> {
    const ents = await fsp.readdir(this.hostPath(p), { withFileTypes: true });
    return ents.map((d) => ({ name: d.name, type: direntType(d) }));
  }

  readlink(p: LayerPath): Promise<string> {
    return fsp.readlink(this.hostPath(p));
  }

  async getxattr(p: LayerPath, name: string): Promise<Buffer> {
    try {
      return native().lgetxattr(this.hostPath(p), name);
    } catch (err) {
      throw asFsError(err, 'lgetxattr', this.hostPath(p));
    }
  }

  async listxattr(p: LayerPath): Promise<string[]> {
    try {
      return native().llistxattr(this.hostPath(p));
    } catch (err) {
      throw asFsError(err, 'llistxattr', this.hostPath(p));
    }
  }

  async open(p: LayerPath, flags: number): Promise<LayerFile> {
    return new HostFile(await fsp.open(this.hostPath(p), flags));
  }

  async statfs(p: LayerPath): Promise<StatFs> {
    const s = await fsp.statfs(this.hostPath(p));
    return {
      type: s.type,
      bsize: s.bsize,
      blocks: s.blocks,
      bfree: s.bfree,
      bavail: s.bavail,
      files: s.files,
      ffree: s.ffree,
      namemax: 255,
    };
  }
}
