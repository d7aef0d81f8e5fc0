#!/usr/bin/env node
// npm run demo (as root): builds a small Nix-like store in two lower layers
// (with whiteouts and an opaque directory), mounts it with layerfs, lists and
// reads through the mount, shows which layer each shown path comes from, and
// unmounts. Everything lives in a temp dir that is removed at the end.
'use strict';
const { execFileSync, spawnSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');

const repo = path.resolve(__dirname, '..');
const cli = path.join(repo, 'bin', 'layerfs');
const { native } = require(path.join(repo, 'dist', 'native.js'));
const { Overlay } = require(path.join(repo, 'dist', 'core', 'overlay.js'));
const { HostLayer } = require(path.join(repo, 'dist', 'layers', 'host.js'));

if (process.geteuid() !== 0) {
  console.error('demo: run as root (it mounts a FUSE filesystem)');
  process.exit(2);
}

const base = fs.mkdtempSync(path.join(os.tmpdir(), 'layerfs-demo-'));
const lowerNew = path.join(base, 'lower-new'); // top lower: newer store paths
const lowerBase = path.join(base, 'lower-base'); // bottom lower: the big shared store
const mnt = path.join(base, 'merged');
for (const d of [lowerNew, lowerBase, mnt]) fs.mkdirSync(d);

const alphabet = '0123456789abcdfghijklmnpqrsvwxyz'; // Nix's base32
const hash = (s) => [...crypto.createHash('sha256').update(s).digest()].slice(0, 32).map((b) => alphabet[b % 32]).join('');
const pnames = ['bash', 'coreutils', 'glibc', 'gcc', 'python3', 'openssl', 'zlib', 'curl', 'git', 'perl', 'nodejs', 'sqlite'];

function storePath(root, name, version, files) {
  const sp = `${hash(`${name}-${version}`)}-${name}-${version}`;
  for (const [rel, data] of Object.entries(files)) {
    const f = path.join(root, sp, rel);
    fs.mkdirSync(path.dirname(f), { recursive: true });
    fs.writeFileSync(f, data);
  }
  return sp;
}

// 240 store paths in the base layer, 80 newer ones in the top lower layer.
const basePaths = [];
for (let i = 0; i < 240; i++) {
  const name = pnames[i % pnames.length];
  const version = `1.${Math.floor(i / pnames.length)}`;
  basePaths.push(storePath(lowerBase, name, version, {
    [`bin/${name}`]: `#!/bin/sh\necho ${name} ${version} from the base layer\n`,
    [`share/doc/${name}/README`]: `${name} ${version}\n`,
    [`lib/lib${name}.so`]: crypto.randomBytes(512),
  }));
}
for (let i = 0; i < 80; i++) {
  const name = pnames[i % pnames.length];
  storePath(lowerNew, name, `2.${i}`, { [`bin/${name}`]: `#!/bin/sh\necho ${name} 2.${i} from the newer layer\n` });
}
// Whiteouts in the top lower: three base store paths were garbage-collected.
const deleted = basePaths.slice(0, 3);
for (const sp of deleted) native().mknod(path.join(lowerNew, sp), 0o020000, 0, 0);
// An opaque directory: the newer layer replaces one store path's doc dir wholesale.
const replaced = basePaths[5];
fs.mkdirSync(path.join(lowerNew, replaced, 'share', 'doc'), { recursive: true });
fs.writeFileSync(path.join(lowerNew, replaced, 'share', 'doc', 'NOTICE'), 'documentation replaced by the newer layer\n');
native().lsetxattr(path.join(lowerNew, replaced, 'share', 'doc'), 'trusted.overlay.opaque', Buffer.from('y'), 0);
// And an OCI-style whiteout of one file inside a merged store path.
const patched = basePaths[7];
fs.mkdirSync(path.join(lowerNew, patched, 'lib'), { recursive: true });
fs.writeFileSync(path.join(lowerNew, patched, 'lib', `.wh.lib${patched.split('-')[1]}.so`), '');

const sh = (cmd, args) => execFileSync(cmd, args, { encoding: 'utf8' });
const say = (s) => console.log(s);

let mounted = false;
async function main() {
  say(`layerfs demo in ${base}`);
  say(`  lower 1 (top):    ${lowerNew}  (80 store paths, 3 whiteouts, 1 opaque dir, 1 .wh. file)`);
  say(`  lower 2 (bottom): ${lowerBase}  (240 store paths)`);
  sh(cli, ['mount', 'demo-store', mnt, '-o', `lowerdir=${lowerNew}:${lowerBase}`]);
  mounted = true;
  say(`\n$ layerfs mount demo-store ${mnt} -o lowerdir=lower-new:lower-base`);
  say(sh('grep', [mnt, '/proc/self/mounts']).trim());

  const entries = fs.readdirSync(mnt);
  say(`\n$ ls merged | wc -l\n${entries.length}   (240 + 80 - 3 whited out)`);

  // Which layer each shown path comes from: the core resolves offline, over
  // the same directories, without going through the mount.
  const ov = await Overlay.open({ layers: [new HostLayer(lowerNew), new HostLayer(lowerBase)], layerNames: ['lower 1', 'lower 2'], hasUpper: false });
  const why = async (p) => {
    // Walk down to the first component that does not resolve, and say why.
    const parts = p.split('/').filter(Boolean);
    let parent = await ov.resolve('/');
    let r = parent;
    for (let i = 0; i < parts.length; i++) {
      r = await ov.resolveMaybe('/' + parts.slice(0, i + 1).join('/'));
      if (r.entries.length === 0) {
        const s = r.stop;
        if (s && s.kind === 'whiteout') return `hidden by a ${s.form} whiteout in ${ov.layerNames[s.layer]} at ${r.path}`;
        if (parent.stop && parent.stop.kind === 'opaque') {
          return `hidden: ${parent.path} is opaque in ${ov.layerNames[parent.stop.layer]} (${parent.stop.form})`;
        }
        return 'absent';
      }
      parent = r;
    }
    const layers = r.entries.map((e) => ov.layerNames[e.layer]).join(' + ');
    const stop = r.stop && r.stop.kind === 'opaque' ? ` (opaque in ${ov.layerNames[r.stop.layer]}: ${r.stop.form})` : '';
    return `${r.entries.length > 1 ? 'merged from ' : 'from '}${layers}${stop}`;
  };
  const shown = [entries.sort()[0], `${basePaths[100]}`, `${basePaths[100]}/bin`, `${replaced}/share/doc`, `${patched}/lib`];
  say('\nwhere shown paths come from:');
  for (const p of shown) say(`  /${p}\n      ${await why('/' + p)}`);
  say('\nwhat is hidden, and by what:');
  for (const p of [deleted[0], `${replaced}/share/doc/${replaced.split('-')[1]}/README`, `${patched}/lib/lib${patched.split('-')[1]}.so`]) {
    say(`  /${p}\n      ${await why('/' + p)}`);
  }

  const newer = entries.find((e) => e.includes('-bash-2.'));
  say(`\n$ cat merged/${newer}/bin/bash\n${fs.readFileSync(path.join(mnt, newer, 'bin', 'bash'), 'utf8').trim()}`);
  say(`\n$ ls merged/${replaced}/share/doc\n${fs.readdirSync(path.join(mnt, replaced, 'share', 'doc')).join('  ')}`);
  const r = spawnSync('touch', [path.join(mnt, 'new-file')], { encoding: 'utf8' });
  say(`\n$ touch merged/new-file\n${r.stderr.trim()}`);
  for (const p of [`${newer}/bin/bash`, deleted[0]]) {
    const x = spawnSync(cli, ['explain', path.join(mnt, p)], { encoding: 'utf8' });
    say(`\n$ layerfs explain merged/${p}   # exit ${x.status}\n${(x.stdout + x.stderr).trimEnd()}`);
  }
  const st = spawnSync(cli, ['status', mnt], { encoding: 'utf8' });
  say(`\n$ layerfs status merged | head -12\n${(st.stdout + st.stderr).split('\n').slice(0, 12).join('\n')}`);
  const files = sh('find', [mnt, '-type', 'f']).split('\n').filter(Boolean).length;
  say(`\n$ find merged -type f | wc -l\n${files}`);
}

main()
  .then(() => 0, (err) => {
    console.error(`demo failed: ${err.message}`);
    return 1;
  })
  .then((status) => {
    if (mounted) {
      say(`\n$ layerfs umount ${mnt}`);
      const u = spawnSync(cli, ['umount', mnt], { encoding: 'utf8' });
      if (u.status !== 0) {
        console.error(u.stderr.trim());
        spawnSync('umount', ['-l', mnt]);
        status = 1;
      }
    }
    // Wait for the daemon to notice and leave before removing its layers.
    const deadline = Date.now() + 5000;
    while (fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${mnt} `) && Date.now() < deadline) {}
    fs.rmSync(base, { recursive: true, force: true });
    say(status === 0 ? 'demo done: unmounted and cleaned up' : 'demo failed');
    process.exit(status);
  });
