// Jest globalSetup/globalTeardown: every daemon the tests start puts its
// control socket in one temporary runtime directory (inherited through
// LAYERFS_RUNTIME_DIR), removed at the end: a daemon a test kills on purpose
// (SIGKILL) cannot leave a socket in /run/layerfs.
const fs = require('fs');
const os = require('os');
const path = require('path');

module.exports = async function setup() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lfs-test-run-'));
  fs.chmodSync(dir, 0o700);
  process.env.LAYERFS_RUNTIME_DIR = dir;
};

module.exports.teardown = async function teardown() {
  const dir = process.env.LAYERFS_RUNTIME_DIR;
  if (dir && path.basename(dir).startsWith('lfs-test-run-')) fs.rmSync(dir, { recursive: true, force: true });
};
