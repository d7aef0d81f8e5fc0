// What a FUSE request is about, for tracing: its merged path(s), its flags
// and, for requests on an open file, the file handle. Read from the request
// before it is served (a rename or unlink changes the node table).
import { childPath } from '../core/paths';
import type { NodeTable } from './nodes';
import * as P from './protocol';

export interface Described {
  path: string;
  path2?: string;
  flags?: number;
  fh?: number;
}

function child(nodes: NodeTable, parent: number, name: string): string {
  const p = nodes.pathOf(parent);
  return p === undefined ? `#${parent}/${name}` : childPath(p, name);
}

/** Ops whose argument starts with the file handle (fuse_read_in, fuse_write_in, ...). */
const FH_FIRST: ReadonlySet<number> = new Set([P.Op.READ, P.Op.WRITE, P.Op.RELEASE, P.Op.FLUSH, P.Op.FSYNC, P.Op.FALLOCATE, P.Op.LSEEK, P.Op.GETLK, P.Op.SETLK, P.Op.SETLKW]);

export function describe(req: P.Request, nodes: NodeTable): Described {
  const a = req.arg;
  const self = (): string => nodes.pathOf(req.nodeid) ?? `#${req.nodeid}`;
  try {
    switch (req.opcode) {
      case P.Op.LOOKUP:
      case P.Op.UNLINK:
      case P.Op.RMDIR:
        return { path: child(nodes, req.nodeid, P.cstrings(a, 1)[0]) };
      case P.Op.MKDIR:
        return { path: child(nodes, req.nodeid, P.cstrings(a, 1, 8)[0]), flags: a.readUInt32LE(0) };
      case P.Op.MKNOD:
        return { path: child(nodes, req.nodeid, P.cstrings(a, 1, 16)[0]), flags: a.readUInt32LE(0) };
      case P.Op.SYMLINK: {
        const [name, target] = P.cstrings(a, 2);
        return { path: child(nodes, req.nodeid, name), path2: target };
      }
      case P.Op.RENAME:
      case P.Op.RENAME2: {
        const two = req.opcode === P.Op.RENAME2;
        const [from, to] = P.cstrings(a, 2, two ? 16 : 8);
        return { path: child(nodes, req.nodeid, from), path2: child(nodes, Number(a.readBigUInt64LE(0)), to), flags: two ? a.readUInt32LE(8) : 0 };
      }
      case P.Op.LINK: {
        const from = Number(a.readBigUInt64LE(0));
        return { path: child(nodes, req.nodeid, P.cstrings(a, 1, 8)[0]), path2: nodes.pathOf(from) ?? `#${from}` };
      }
      case P.Op.CREATE:
        return { path: child(nodes, req.nodeid, P.cstrings(a, 1, 16)[0]), flags: a.readUInt32LE(0) };
      case P.Op.OPEN:
        return { path: self(), flags: a.readUInt32LE(0) };
      case P.Op.SETATTR:
        return { path: self(), flags: a.readUInt32LE(0) };
      case P.Op.SETXATTR:
      case P.Op.GETXATTR:
      case P.Op.REMOVEXATTR: {
        // The attribute's name, after the fixed part (setxattr_in and
        // getxattr_in: 8 bytes, as session.ts reads them; removexattr: none).
        const off = req.opcode === P.Op.REMOVEXATTR ? 0 : 8;
        return { path: self(), path2: `xattr ${P.cstrings(a, 1, off)[0]}` };
      }
      default:
        if (FH_FIRST.has(req.opcode) && a.length >= 8) return { path: self(), fh: Number(a.readBigUInt64LE(0)) };
        return { path: req.nodeid === 0 ? '' : self() };
    }
  } catch {
    return { path: self() };
  }
}
