#!/usr/bin/env node
// What the tests need beyond npm packages, installed when missing (as root,
// from Debian's archive): fuse3, for fusermount3, the helper through which
// users without root mount; attr, for getfattr/setfattr (the private-xattr
// case in write-cases drives them through the mount as a user would).
// Everything else they use (mount, umount, unshare, runuser, useradd) is in
// every Debian system. Without root it only
// says what is missing; the tests that need it are then skipped, with the
// reason printed.
'use strict';
const cp = require('child_process');
const fs = require('fs');

const missing = [];
const has = (...paths) => paths.some((p) => fs.existsSync(p));
if (!has('/usr/bin/fusermount3', '/bin/fusermount3')) missing.push('fuse3');
if (!has('/usr/bin/getfattr', '/bin/getfattr')) missing.push('attr');
if (missing.length === 0) process.exit(0);
if (process.geteuid() !== 0) {
  process.stderr.write(`test dependencies missing (${missing.join(' ')}): install them as root (apt-get install ${missing.join(' ')}) or tests needing them are skipped\n`);
  process.exit(0);
}
process.stderr.write(`installing test dependencies: apt-get install -y ${missing.join(' ')}\n`);
const install = `apt-get install -y --no-install-recommends ${missing.join(' ')}`;
const r = cp.spawnSync('sh', ['-c', `${install} >/dev/null 2>&1 || (apt-get update >/dev/null 2>&1 && ${install} >/dev/null 2>&1)`], {
  env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
});
if (r.status !== 0) {
  process.stderr.write(`could not install ${missing.join(' ')} (apt-get exit ${r.status}); tests needing them are skipped\n`);
}
