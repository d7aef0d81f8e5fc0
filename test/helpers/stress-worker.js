#!/usr/bin/env node
// One of several processes working on one mount at the same time, in the same
// directories (test/differential/concurrency.test.ts). Each worker only
// creates, renames, removes and changes names it owns, so the final state
// does not depend on how the workers interleave; what they share is the
// directories themselves (every directory is copied up, and whiteouts and
// renames land in it, from all workers at once) and the "shared" lower files,
// which all workers write at the same time, each into its own byte ranges, so
// that concurrent copy-ups of one file must lose nothing.
// Prints its results (one string per operation) as JSON.
//   usage: stress-worker.js ROOT WORKER NWORKERS SEED COUNT
'use strict';
const fs = require('fs');
const path = require('path');
const C = fs.constants;
const { rng } = require('./rng');
const native = require(path.join(__dirname, '..', '..', 'native', 'build', 'Release', 'layerfs_native.node'));

const [root, workerArg, nArg, seedArg, countArg] = process.argv.slice(2);
const me = Number(workerArg);
const N = Number(nArg);
const at = (p) => path.join(root, p);

// The stack's layout (kept in step with the test's buildStack).
const DIRS = ['d0', 'd1', 'd2', 'd3'];
const SHARED = 6; // d*/s0..s5, written by everyone
const OWNED = 3; // d*/o<worker>_0..2, lower files this worker may change
const BLOCK = 512;

const r = rng(Number(seedArg) * 104729 + me * 7919 + 1);
const pick = (xs) => xs[Math.floor(r() * xs.length)];
const int = (n) => Math.floor(r() * n);

// This worker's model: where its names are now.
const files = []; // regular files it created or owns (relative paths)
const dirs = []; // directories it created, each [path, [files inside]]
const owned = [];
for (const d of DIRS) for (let k = 0; k < OWNED; k++) owned.push(`${d}/o${me}_${k}`);
files.push(...owned);
const subdirs = DIRS.map((d) => `${d}/sub${me}`); // lower directories holding one file each
let serial = 0;
const fresh = (prefix) => `${pick(DIRS)}/${prefix}${me}_${serial++}`;
const remove = (xs, x) => xs.splice(xs.indexOf(x), 1);

function pattern(len, seedByte) {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (seedByte + i * 31) & 0xff;
  return b;
}

const ops = [
  // Everyone writes the shared lower files: concurrent copy-ups of one file.
  [10, () => {
    const p = `${pick(DIRS)}/s${int(SHARED)}`;
    const off = (int(64) * N + me) * BLOCK;
    const fd = fs.openSync(at(p), C.O_WRONLY);
    try {
      fs.writeSync(fd, Buffer.alloc(BLOCK, me + 1), 0, BLOCK, off);
    } finally {
      fs.closeSync(fd);
    }
    return `write ${p}@${off}`;
  }],
  [8, () => {
    const p = fresh('w');
    fs.writeFileSync(at(p), pattern(int(65536), int(256)), { mode: pick([0o644, 0o600, 0o755]) });
    files.push(p);
    return `create ${p}`;
  }],
  [6, () => {
    if (files.length === 0) return 'none';
    const p = pick(files);
    const fd = fs.openSync(at(p), C.O_WRONLY | C.O_APPEND);
    try {
      fs.writeSync(fd, pattern(int(8192), int(256)));
      if (r() < 0.3) fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    return `append ${p}`;
  }],
  [8, () => {
    if (files.length === 0) return 'none';
    const p = pick(files);
    const q = r() < 0.3 && dirs.length > 0 ? `${pick(dirs)[0]}/m${me}_${serial++}` : fresh('m');
    fs.renameSync(at(p), at(q));
    files[files.indexOf(p)] = q;
    return `rename ${p} ${q}`;
  }],
  [6, () => {
    if (files.length === 0) return 'none';
    const p = pick(files);
    fs.unlinkSync(at(p));
    remove(files, p);
    return `unlink ${p}`;
  }],
  [3, () => {
    if (files.length === 0) return 'none';
    const p = pick(files);
    const q = fresh('l');
    fs.linkSync(at(p), at(q));
    files.push(q);
    return `link ${p} ${q}`;
  }],
  [4, () => {
    if (files.length === 0) return 'none';
    const p = pick(files);
    const what = int(4);
    if (what === 0) fs.chmodSync(at(p), pick([0o600, 0o640, 0o755]));
    else if (what === 1) fs.truncateSync(at(p), int(100000));
    else if (what === 2) fs.utimesSync(at(p), 1500000000 + int(1e6), 1500000000 + int(1e6));
    else fs.lchownSync(at(p), pick([0, 1000]), pick([0, 1000]));
    return `attr${what} ${p}`;
  }],
  [4, () => {
    const p = fresh('dir');
    fs.mkdirSync(at(p), 0o755);
    const inside = [];
    for (let k = int(3); k >= 0; k--) {
      const f = `${p}/f${k}`;
      fs.writeFileSync(at(f), pattern(int(4096), k));
      inside.push(f);
    }
    dirs.push([p, inside]);
    return `mkdir ${p}`;
  }],
  [3, () => {
    // A pure-upper directory moves between merged directories (and is made opaque).
    if (dirs.length === 0) return 'none';
    const e = pick(dirs);
    const q = fresh('mv');
    fs.renameSync(at(e[0]), at(q));
    // Files this worker moved into it move along.
    for (let i = 0; i < files.length; i++) if (files[i].startsWith(`${e[0]}/`)) files[i] = q + files[i].slice(e[0].length);
    e[1] = e[1].map((f) => q + f.slice(e[0].length));
    e[0] = q;
    return `rename-dir ${q}`;
  }],
  [3, () => {
    if (dirs.length === 0) return 'none';
    const e = pick(dirs);
    for (const f of e[1]) fs.unlinkSync(at(f));
    for (const f of files.filter((x) => x.startsWith(`${e[0]}/`))) {
      fs.unlinkSync(at(f));
      remove(files, f);
    }
    fs.rmdirSync(at(e[0]));
    remove(dirs, e);
    return `rmdir ${e[0]}`;
  }],
  [2, () => {
    // A lower directory: empty it, then remove it (whiteouts in a merged parent).
    if (subdirs.length === 0) return 'none';
    const d = pick(subdirs);
    fs.unlinkSync(at(`${d}/x`));
    fs.rmdirSync(at(d));
    remove(subdirs, d);
    return `rmdir-lower ${d}`;
  }],
  [3, () => {
    if (files.length === 0) return 'none';
    const p = pick(files);
    native.lsetxattr(at(p), 'user.w', Buffer.from(`v${me}.${int(10)}`), 0);
    return `xattr ${p}`;
  }],
];

const total = ops.reduce((a, [w]) => a + w, 0);
const out = [];
for (let i = 0; i < Number(countArg); i++) {
  let x = r() * total;
  let op = ops[0][1];
  for (const [w, f] of ops) {
    x -= w;
    if (x < 0) {
      op = f;
      break;
    }
  }
  try {
    out.push(op());
  } catch (err) {
    // Every operation is on this worker's own names: an error is a finding,
    // reported as a result (and the model is left as it was).
    out.push(`${err.code ?? err.message} at op ${i}`);
  }
}
process.stdout.write(JSON.stringify(out));
