// Concurrency: several processes create, write, rename, link, chmod and
// delete in the same directories of one mount at once, and all of them write
// the same lower files (each into its own byte ranges), so copy-ups of one
// file and of one directory race. Each worker only changes names it owns, so
// the end state does not depend on the interleaving: the same workload on a
// kernel overlayfs mount must end with the same merged tree, the same upper
// directory and the same per-operation results. Any lost or half-written
// data shows up as a content hash difference.
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { describeIfKernelOverlay, tmpdir } from '../helpers/env';
import { anyMountUnder, mountKernelOverlay, mountLayerfs, type Mounted } from '../helpers/mount';
import { diffTrees, layerSnapshot, snapshot } from '../helpers/stack';

const WORKERS = Number(process.env.LAYERFS_STRESS_WORKERS ?? 8);
const OPS = Number(process.env.LAYERFS_STRESS_OPS ?? 300);
const SEEDS = (process.env.LAYERFS_STRESS_SEEDS ?? '1,2').split(',').map(Number);
const WORKER = path.join(__dirname, '..', 'helpers', 'stress-worker.js');

/** The layout stress-worker.js expects: two lowers merging d0..d3. */
function buildStack(dir: string): { lowerdir: string; upper: string; work: string; mnt: string } {
  const l1 = path.join(dir, 'l1');
  const l2 = path.join(dir, 'l2');
  for (const d of ['d0', 'd1', 'd2', 'd3']) {
    fs.mkdirSync(path.join(l1, d), { recursive: true });
    fs.mkdirSync(path.join(l2, d), { recursive: true });
    for (let k = 0; k < 6; k++) {
      // Shared files: 320 KiB with a hole in the middle, in either lower.
      const p = path.join(k % 2 ? l1 : l2, d, `s${k}`);
      const fd = fs.openSync(p, 'w');
      fs.writeSync(fd, Buffer.alloc(64 << 10, 0x41 + k), 0, 64 << 10, 0);
      fs.writeSync(fd, Buffer.alloc(64 << 10, 0x61 + k), 0, 64 << 10, 256 << 10);
      fs.closeSync(fd);
    }
    for (let w = 0; w < WORKERS; w++) {
      for (let k = 0; k < 3; k++) fs.writeFileSync(path.join(k % 2 ? l1 : l2, d, `o${w}_${k}`), `owned ${d} ${w} ${k}\n`.repeat(100));
      fs.mkdirSync(path.join(l2, d, `sub${w}`));
      fs.writeFileSync(path.join(l2, d, `sub${w}`, 'x'), 'x');
    }
  }
  const upper = path.join(dir, 'upper');
  const work = path.join(dir, 'work');
  const mnt = path.join(dir, 'mnt');
  for (const d of [upper, work, mnt]) fs.mkdirSync(d);
  return { lowerdir: `${l1}:${l2}`, upper, work, mnt };
}

/** Starts every worker at once on root; resolves with each worker's results. */
function runWorkers(root: string, seed: number): Promise<string[][]> {
  return Promise.all(
    Array.from({ length: WORKERS }, (_, w) =>
      new Promise<string[]>((resolve, reject) => {
        const child = spawn(process.execPath, [WORKER, root, String(w), String(WORKERS), String(seed), String(OPS)], {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        let err = '';
        child.stdout.on('data', (b) => (out += b));
        child.stderr.on('data', (b) => (err += b));
        const timer = setTimeout(() => child.kill('SIGKILL'), 240000);
        child.on('exit', (code, signal) => {
          clearTimeout(timer);
          if (code === 0) resolve(JSON.parse(out) as string[]);
          else reject(new Error(`worker ${w} ended with ${signal ?? code}: ${err}`));
        });
      }),
    ),
  );
}

describeIfKernelOverlay('write path under concurrency: kernel overlayfs vs layerfs', () => {
  let base: string;
  const mounts: Mounted[] = [];

  beforeEach(() => {
    base = tmpdir('lfs-stress-');
  });

  afterEach(async () => {
    for (const m of mounts.splice(0)) await m.unmount();
    expect(anyMountUnder(base)).toBe(false);
    fs.rmSync(base, { recursive: true, force: true });
  });

  for (const seed of SEEDS) {
    test(`seed ${seed}: ${WORKERS} processes x ${OPS} operations in the same directories`, async () => {
      const k = buildStack(path.join(base, 'kernel'));
      const l = buildStack(path.join(base, 'layerfs'));
      const km = mountKernelOverlay(`lowerdir=${k.lowerdir},upperdir=${k.upper},workdir=${k.work}`, k.mnt);
      mounts.push(km);
      const lm = await mountLayerfs(`lowerdir=${l.lowerdir},upperdir=${l.upper},workdir=${l.work}`, l.mnt);
      mounts.push(lm);

      let t = Date.now();
      const kr = await runWorkers(k.mnt, seed);
      const kMs = Date.now() - t;
      t = Date.now();
      const lr = await runWorkers(l.mnt, seed);
      const lMs = Date.now() - t;

      const kTree = snapshot(k.mnt).tree;
      const lTree = snapshot(l.mnt).tree;
      await lm.unmount();
      await km.unmount();
      mounts.splice(0);
      const ku = layerSnapshot(k.upper).tree;
      const lu = layerSnapshot(l.upper).tree;
      const kErrors = kr.flat().filter((x) => / at op /.test(x));
      console.log(
        `concurrency seed ${seed}: ${WORKERS} x ${OPS} ops, kernel ${kMs} ms, layerfs ${lMs} ms; ` +
          `${Object.keys(kTree).length} merged entries, ${Object.keys(ku).length} upper entries; ` +
          `${kErrors.length} kernel errors`,
      );
      // Every operation is on the worker's own names: none may fail.
      expect(kErrors).toEqual([]);
      expect(lr).toEqual(kr);
      expect(diffTrees(kTree, lTree).slice(0, 20)).toEqual([]);
      expect(diffTrees(ku, lu).slice(0, 20)).toEqual([]);
    }, 600000);
  }
});
