// Whole-tree snapshot of a mounted tree: path -> one line of what a user can
// observe (type and mode, owner, nlink, size, symlink target, content hash,
// device numbers, user.* xattrs). Plain JavaScript: used by jest (through
// stack.ts) and by scenario-run.js, which runs as another user.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const native = require(path.join(__dirname, '..', '..', 'native', 'build', 'Release', 'layerfs_native.node'));

function snapshot(root, o = {}) {
  const out = {};
  const dangling = [];
  const walk = (rel) => {
    const abs = rel ? path.join(root, rel) : root;
    let st;
    try {
      st = fs.lstatSync(abs, { bigint: true });
    } catch (err) {
      if (err.code !== 'ENOENT') throw err;
      dangling.push(rel);
      return;
    }
    const type = Number(st.mode) & 0o170000;
    const parts = [`mode=${Number(st.mode).toString(8)}`];
    if (!o.noOwners) parts.push(`uid=${st.uid}`, `gid=${st.gid}`);
    parts.push(`nlink=${st.nlink}`);
    if (type !== 0o040000 || o.dirSize) parts.push(`size=${st.size}`);
    if (type === 0o020000 || type === 0o060000) parts.push(`rdev=${st.rdev}`);
    if (o.mtime) parts.push(`mtime=${st.mtimeNs / 1000000n}`);
    if (o.ino) parts.push(`ino=${st.ino}`);
    if (type === 0o120000) parts.push(`target=${fs.readlinkSync(abs)}`);
    if (type === 0o100000) parts.push(`sha=${crypto.createHash('sha256').update(fs.readFileSync(abs)).digest('hex').slice(0, 16)}`);
    if (type === 0o100000 || type === 0o040000) {
      const xs = native.llistxattr(abs).filter((n) => n.startsWith('user.')).sort();
      for (const x of xs) parts.push(`${x}=${native.lgetxattr(abs, x).toString()}`);
    }
    out[rel || '/'] = parts.join(' ');
    if (type === 0o040000) for (const n of fs.readdirSync(abs).sort()) walk(rel ? `${rel}/${n}` : n);
  };
  walk('');
  return { tree: out, dangling };
}

module.exports = { snapshot };
