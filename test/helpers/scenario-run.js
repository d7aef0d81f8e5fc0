#!/usr/bin/env node
// Runs the scenario suite (scenarios.js) on several mounts, in the context it
// was started in: as an unprivileged user (layerfs mounts go through
// fusermount3), or as root inside `unshare -Urm` (layerfs and kernel
// overlayfs mount directly). Prints JSON: per mount, the step results, the
// merged tree afterwards; errors that stop a mount are
// reported in it too. Every mount it made is unmounted before it exits.
//   usage: scenario-run.js CONFIG.json
// CONFIG: { cli, skipSteps?, mounts: [{ name, kind: 'layerfs'|'kernel'|'mounted',
//           lowerdir, upper, work, mnt, extra?, pidfile? }] }
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');
const native = require(path.join(__dirname, '..', '..', 'native', 'build', 'Release', 'layerfs_native.node'));
const { runAll } = require('./scenarios');
const { snapshot } = require('./tree');

const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const ctx = { uid: process.geteuid(), gid: process.getegid(), native };
const result = { uid: ctx.uid, gid: ctx.gid, mounts: {} };

function mount(m) {
  const opts = `lowerdir=${m.lowerdir},upperdir=${m.upper},workdir=${m.work}`;
  if (m.kind === 'kernel') {
    native.mount('overlay', m.mnt, 'overlay', 0, `${opts},userxattr`);
    return;
  }
  if (m.kind === 'mounted') return;
  const r = spawnSync(process.execPath, [cfg.cli, 'mount', '--pidfile', m.pidfile, '-o', `${opts}${m.extra ? `,${m.extra}` : ''}`, m.mnt], { encoding: 'utf8', timeout: 60000 });
  if (r.status !== 0) throw new Error(`layerfs mount failed (${r.status ?? r.signal}): ${r.stderr.trim()}`);
}

function unmount(m) {
  if (m.kind === 'mounted') return;
  if (m.kind === 'kernel') {
    native.umount2(m.mnt, native.MNT_DETACH);
    return;
  }
  const r = spawnSync(process.execPath, [cfg.cli, 'umount', m.mnt], { encoding: 'utf8', timeout: 30000 });
  if (r.status !== 0) spawnSync(process.execPath, [cfg.cli, 'umount', '--lazy', m.mnt], { encoding: 'utf8', timeout: 30000 });
}

for (const m of cfg.mounts) {
  const out = (result.mounts[m.name] = {});
  try {
    mount(m);
  } catch (err) {
    out.error = err.message;
    continue;
  }
  try {
    if (!cfg.skipSteps) out.steps = runAll(m.mnt, ctx);
    out.tree = snapshot(m.mnt).tree;
  } catch (err) {
    out.error = err.stack;
  } finally {
    unmount(m);
  }
}
process.stdout.write(JSON.stringify(result));
