#!/usr/bin/env node
// Generates a random sequence of filesystem operations and applies each one
// to two mounts in turn (the oracle first), printing both results per
// operation ("ok", "ok <detail>" or the error code) as JSON.
// The next operation is drawn from the seed and the ORACLE's current state
// (it prefers paths that exist there), so the sequence is reproducible and
// mostly meaningful. Runs in its own process so that a stuck mount can never
// hang the test runner: the caller kills it on timeout. Never follows a
// symlink out of a root: path operations are l-variants or use O_NOFOLLOW,
// chmod/truncate (which follow) are skipped on symlinks, and paths whose
// parents hold a symlink are skipped.
//   usage: apply-ops.js ORACLE_ROOT OTHER_ROOT SEED COUNT PATHS.json [LOWERDIRS]
// LOWERDIRS (the oracle's, colon-separated) lets it skip, on both mounts, the
// one case where the kernel contradicts the merged view (see xwhiteoutEmpty).
'use strict';
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const { rng } = require('./rng');
const native = require(path.join(__dirname, '..', '..', 'native', 'build', 'Release', 'layerfs_native.node'));

const [oracleRoot, otherRoot, seedArg, countArg, pathsFile, lowerdirs] = process.argv.slice(2);
const lowers = lowerdirs ? lowerdirs.split(':') : [];
const C = fs.constants;
let root = oracleRoot;
const at = (p) => path.join(root, p);

function describeStat(st) {
  const type = Number(st.mode) & 0o170000;
  const parts = [`mode=${Number(st.mode).toString(8)}`, `uid=${st.uid}`, `gid=${st.gid}`];
  if (type !== 0o040000) parts.push(`size=${st.size}`, `nlink=${st.nlink}`);
  return parts.join(',');
}

/** Refuses paths whose parents include a symlink: they could lead out of the root. */
function checkParents(rel) {
  const parts = rel.split('/');
  let cur = root;
  for (const part of parts.slice(0, -1)) {
    cur = path.join(cur, part);
    let st;
    try {
      st = fs.lstatSync(cur);
    } catch {
      return; // the operation itself fails on the missing parent
    }
    if (st.isSymbolicLink()) throw Object.assign(new Error('symlink parent'), { code: 'SKIP_SYMLINK_PARENT' });
    if (!st.isDirectory()) return;
  }
}

/**
 * Kernel overlayfs (6.7 up to at least 6.18) checks a directory's emptiness
 * for rmdir and rename-over without looking at xattr whiteouts in lower
 * layers (ovl_check_empty_dir defers that check to ovl_iterate), so a
 * directory that lists as empty because a lower xattr whiteout hides its last
 * entry is "not empty" to it. layerfs follows the merged view (DESIGN.md,
 * known divergences; test/unit covers its side). Such operations are
 * skipped on both mounts, and counted.
 */
function xwhiteoutEmpty(rel) {
  const abs = path.join(oracleRoot, rel);
  try {
    // Names that cannot be looked up do not count: the kernel lists a lower
    // xattr whiteout under a directory it merged through an origin.
    if (!fs.lstatSync(abs).isDirectory() || fs.readdirSync(abs).some((n) => exists(path.join(abs, n)))) return false;
  } catch {
    return false;
  }
  for (const lower of lowers) {
    let names;
    try {
      names = fs.readdirSync(path.join(lower, rel));
    } catch {
      continue;
    }
    for (const n of names) {
      try {
        native.lgetxattr(path.join(lower, rel, n), 'trusted.overlay.whiteout');
        return true;
      } catch {
        // not an xattr whiteout
      }
    }
  }
  return false;
}

function apply(op) {
  const p = op.path !== undefined ? at(op.path) : undefined;
  if (op.path !== undefined) checkParents(op.path);
  if (op.to !== undefined) checkParents(op.to);
  switch (op.kind) {
    case 'create': {
      const fd = fs.openSync(p, C.O_CREAT | C.O_WRONLY | C.O_NOFOLLOW | C.O_NONBLOCK | (op.excl ? C.O_EXCL : 0) | (op.trunc ? C.O_TRUNC : 0), op.mode);
      fs.closeSync(fd);
      return 'ok';
    }
    case 'write': {
      const fd = fs.openSync(p, C.O_WRONLY | C.O_NOFOLLOW | C.O_NONBLOCK | (op.append ? C.O_APPEND : 0));
      try {
        const data = Buffer.alloc(op.len, op.byte);
        const n = fs.writeSync(fd, data, 0, data.length, op.append ? null : op.offset);
        return `ok ${n}`;
      } finally {
        fs.closeSync(fd);
      }
    }
    case 'read': {
      const fd = fs.openSync(p, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
      try {
        const st = fs.fstatSync(fd);
        if (!st.isFile()) return 'ok not-a-file';
        return `ok ${crypto.createHash('sha256').update(fs.readFileSync(fd)).digest('hex').slice(0, 16)}`;
      } finally {
        fs.closeSync(fd);
      }
    }
    case 'ftruncate': {
      const fd = fs.openSync(p, C.O_WRONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
      try {
        fs.ftruncateSync(fd, op.size);
      } finally {
        fs.closeSync(fd);
      }
      return 'ok';
    }
    case 'truncate':
      if (fs.lstatSync(p).isSymbolicLink()) return 'skip symlink';
      fs.truncateSync(p, op.size);
      return 'ok';
    case 'chmod':
      if (fs.lstatSync(p).isSymbolicLink()) return 'skip symlink';
      fs.chmodSync(p, op.mode);
      return 'ok';
    case 'chown':
      fs.lchownSync(p, op.uid, op.gid);
      return 'ok';
    case 'utimes':
      native.utimensat(p, op.asec, op.ansec, op.msec, op.mnsec, native.AT_SYMLINK_NOFOLLOW);
      return 'ok';
    case 'touch':
      native.utimensat(p, 0, native.UTIME_NOW, 0, native.UTIME_OMIT, native.AT_SYMLINK_NOFOLLOW);
      return 'ok';
    case 'mkdir':
      fs.mkdirSync(p, op.mode);
      return 'ok';
    case 'rmdir':
      fs.rmdirSync(p);
      return 'ok';
    case 'unlink':
      fs.unlinkSync(p);
      return 'ok';
    case 'rename':
      if (op.flags) native.renameat2(p, at(op.to), op.flags);
      else fs.renameSync(p, at(op.to));
      return 'ok';
    case 'link':
      fs.linkSync(p, at(op.to));
      return 'ok';
    case 'symlink':
      fs.symlinkSync(op.target, p);
      return 'ok';
    case 'setxattr':
      native.lsetxattr(p, op.name, Buffer.from(op.value), op.flags ?? 0);
      return 'ok';
    case 'removexattr':
      native.lremovexattr(p, op.name);
      return 'ok';
    case 'getxattr':
      return `ok ${native.lgetxattr(p, op.name).toString()}`;
    case 'lstat':
      return `ok ${describeStat(fs.lstatSync(p, { bigint: true }))}`;
    case 'readdir':
      // Only names that can be looked up: kernel overlayfs also lists
      // whiteouts of directories that merge with nothing (see DESIGN.md).
      return `ok ${fs.readdirSync(p).filter((n) => exists(path.join(p, n))).sort().join('/')}`;
    case 'readlink':
      return `ok ${fs.readlinkSync(p)}`;
    default:
      throw new Error(`unknown op ${op.kind}`);
  }
}

function exists(abs) {
  try {
    fs.lstatSync(abs);
    return true;
  } catch {
    return false;
  }
}


const r = rng(Number(seedArg) * 7919 + 17);
const pick = (xs) => xs[Math.floor(r() * xs.length)];
const known = JSON.parse(fs.readFileSync(pathsFile, 'utf8'));
if (known.length === 0) known.push('a');
const names = ['a', 'b', 'c', 'd', 'e', 'f', 'n1', 'n2', 'n3'];
const isDirIn = (rel) => {
  try {
    return fs.lstatSync(path.join(oracleRoot, rel)).isDirectory();
  } catch {
    return false;
  }
};
/** A path that exists in the oracle, most of the time. */
const existing = () => {
  for (let i = 0; i < 4; i++) {
    const p = pick(known);
    if (exists(path.join(oracleRoot, p))) return p;
  }
  return pick(known);
};
/** A new name, usually inside an existing directory. */
const fresh = () => {
  let dir = '';
  if (r() >= 0.3) {
    for (let i = 0; i < 4; i++) {
      const d = pick(known);
      if (isDirIn(d)) {
        dir = d;
        break;
      }
    }
  }
  const p = dir ? `${dir}/${pick(names)}` : pick(names);
  if (!known.includes(p)) known.push(p);
  return p;
};
const some = () => (r() < 0.7 ? existing() : fresh());
const modes = [0o644, 0o600, 0o755, 0o700, 0o4755, 0o2755, 0o1777, 0o444];
const owners = [0, 1000, 65534];
const weighted = [
  [8, () => ({ kind: 'create', path: r() < 0.7 ? fresh() : existing(), mode: pick(modes) & 0o777, excl: r() < 0.3, trunc: r() < 0.3 })],
  [10, () => ({ kind: 'write', path: existing(), offset: Math.floor(r() * 20000), len: Math.floor(r() * 3000), byte: Math.floor(r() * 256), append: r() < 0.2 })],
  [3, () => ({ kind: 'truncate', path: existing(), size: Math.floor(r() * 30000) })],
  [3, () => ({ kind: 'ftruncate', path: existing(), size: Math.floor(r() * 30000) })],
  [5, () => ({ kind: 'chmod', path: existing(), mode: pick(modes) })],
  [4, () => ({ kind: 'chown', path: existing(), uid: pick(owners), gid: pick(owners) })],
  [4, () => ({
    kind: 'utimes',
    path: existing(),
    asec: 1000000000 + Math.floor(r() * 700000000),
    ansec: Math.floor(r() * 1e9),
    msec: 1000000000 + Math.floor(r() * 700000000),
    mnsec: Math.floor(r() * 1e9),
  })],
  [2, () => ({ kind: 'touch', path: existing() })],
  [6, () => ({ kind: 'mkdir', path: some(), mode: pick([0o755, 0o700, 0o1777, 0o2775]) })],
  [5, () => ({ kind: 'rmdir', path: existing() })],
  [7, () => ({ kind: 'unlink', path: existing() })],
  [8, () => ({ kind: 'rename', path: existing(), to: some(), flags: r() < 0.15 ? 1 : r() < 0.1 ? 2 : 0 })],
  [4, () => ({ kind: 'link', path: existing(), to: fresh() })],
  [3, () => ({ kind: 'symlink', path: fresh(), target: pick(['a', 'b/c', 'n1', 'x/y/z']) })],
  [3, () => ({ kind: 'setxattr', path: existing(), name: pick(['user.a', 'user.b']), value: `v${Math.floor(r() * 10)}` })],
  [2, () => ({ kind: 'removexattr', path: existing(), name: pick(['user.a', 'user.b', 'user.test']) })],
  [3, () => ({ kind: 'getxattr', path: existing(), name: pick(['user.a', 'user.test']) })],
  [6, () => ({ kind: 'lstat', path: some() })],
  [4, () => ({ kind: 'readdir', path: r() < 0.2 ? '' : existing() })],
  [5, () => ({ kind: 'read', path: existing() })],
  [2, () => ({ kind: 'readlink', path: existing() })],
];
const total = weighted.reduce((a, [w]) => a + w, 0);
function nextOp() {
  let x = r() * total;
  for (const [w, make] of weighted) {
    x -= w;
    if (x < 0) return make();
  }
  return weighted[0][1]();
}

function result(op, where) {
  root = where;
  try {
    return apply(op);
  } catch (err) {
    if (typeof err.code === 'string') return err.code;
    throw err;
  }
}

const out = [];
for (let i = 0; i < Number(countArg); i++) {
  const op = nextOp();
  // Decided once, on the oracle's state before the operation.
  if ((op.kind === 'rmdir' && xwhiteoutEmpty(op.path)) || (op.kind === 'rename' && op.flags === 0 && xwhiteoutEmpty(op.to))) {
    out.push([op, 'skip kernel-xwhiteout-emptiness', 'skip kernel-xwhiteout-emptiness']);
    continue;
  }
  const oracle = result(op, oracleRoot);
  const other = result(op, otherRoot);
  out.push([op, oracle, other]);
}
process.stdout.write(JSON.stringify(out));
