// Crash safety of copy-up: the daemon is killed (SIGKILL) while large lower
// files are being copied up. The upper directory must then hold no partial
// file: each name there is either absent or a complete copy. The next mount
// clears the leftovers in the work directory and shows intact data.
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { sha256Of } from '../helpers/data';
import { describeIfFuse, tmpdir } from '../helpers/env';
import { anyMountUnder, forceUnmount, mountLayerfs } from '../helpers/mount';

const SIZE = 256 << 20;
const FILES = ['big1', 'big2', 'big3'];

describeIfFuse('copy-up survives SIGKILL of the daemon', () => {
  let base: string;

  beforeEach(() => {
    base = tmpdir('lfs-crash-');
    for (const d of ['lower', 'upper', 'work', 'mnt']) fs.mkdirSync(path.join(base, d));
    const block = Buffer.alloc(1 << 20);
    for (const [i, f] of FILES.entries()) {
      const fd = fs.openSync(path.join(base, 'lower', f), 'w');
      for (let off = 0; off < SIZE; off += block.length) {
        block.fill(i * 16 + (off >> 20) % 16);
        fs.writeSync(fd, block, 0, block.length, off);
      }
      fs.closeSync(fd);
    }
  });

  afterEach(() => {
    forceUnmount(path.join(base, 'mnt'));
    expect(anyMountUnder(base)).toBe(false);
    fs.rmSync(base, { recursive: true, force: true });
  });

  test('no partial file in the upper after SIGKILL mid-copy; remount clears the work directory', async () => {
    const opts = `lowerdir=${base}/lower,upperdir=${base}/upper,workdir=${base}/work`;
    const m = await mountLayerfs(opts, path.join(base, 'mnt'));
    // Opening for write copies up; the clients block until the copy is done.
    const clients = FILES.map((f) =>
      spawn('python3', ['-c', `import os; os.close(os.open(${JSON.stringify(path.join(m.mountpoint, f))}, os.O_WRONLY))`], { stdio: 'ignore' }),
    );
    // Kill once a copy is under way: a temp file in the work directory that is not full yet.
    const workDir = path.join(base, 'work', 'work');
    const deadline = Date.now() + 20000;
    let seen = 0;
    while (Date.now() < deadline) {
      const sizes = fs.existsSync(workDir) ? fs.readdirSync(workDir).map((n) => fs.statSync(path.join(workDir, n)).blocks * 512) : [];
      seen = sizes.filter((s) => s > 0 && s < SIZE).length;
      if (seen > 0) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(seen).toBeGreaterThan(0);
    process.kill(m.pid!, 'SIGKILL');
    await Promise.all(clients.map((c) => new Promise((r) => c.on('exit', r))));
    forceUnmount(m.mountpoint);

    const lowerSha = FILES.map((f) => sha256Of(path.join(base, 'lower', f)));
    const inUpper = fs.readdirSync(path.join(base, 'upper'));
    for (const name of inUpper) {
      const i = FILES.indexOf(name);
      expect(i).toBeGreaterThanOrEqual(0);
      expect(fs.statSync(path.join(base, 'upper', name)).size).toBe(SIZE);
      expect(sha256Of(path.join(base, 'upper', name))).toBe(lowerSha[i]);
    }
    console.log(`killed with ${seen} copy-up(s) in progress; ${inUpper.length} complete copies in the upper, ${fs.readdirSync(workDir).length} leftover(s) in the work directory`);

    const again = await mountLayerfs(opts, path.join(base, 'mnt'));
    try {
      expect(fs.readdirSync(workDir)).toEqual([]);
      for (const [i, f] of FILES.entries()) expect(sha256Of(path.join(again.mountpoint, f))).toBe(lowerSha[i]);
    } finally {
      await again.unmount();
    }
  }, 120000);
});
