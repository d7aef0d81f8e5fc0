// Write-path differential test: the same random sequence of operations is
// applied to a kernel overlayfs mount and to a layerfs mount over identical
// layer stacks (a pre-populated upper in the form overlays write, and three
// lowers with every form the kernel reads).
// Every result must match, including the exact errno; at the end the merged
// trees and the upper directories must match too. Then each upper is mounted
// by the other implementation, which must show the same merged tree.
//
// Times: an mtime from before the run must match to the nanosecond (copy-up
// keeps it, utimensat sets it); one the run itself produced ("now") only has
// to be from the run on both sides.
//
// LAYERFS_DIFF_SEEDS / LAYERFS_DIFF_OPS widen the run (npm run test:long).
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { describeIfKernelOverlay, tmpdir } from '../helpers/env';
import { anyMountUnder, daemonStats, mountKernelOverlay, mountLayerfs, type Mounted } from '../helpers/mount';
import { diffTrees, kernelForms, layerSnapshot, writtenForms, randomStack, snapshot, stackPaths, writeStack } from '../helpers/stack';

const SEEDS = (process.env.LAYERFS_DIFF_SEEDS ?? '1,2,3,4,5,6,7,8').split(',').map(Number);
const OPS = Number(process.env.LAYERFS_DIFF_OPS ?? 2000);
const APPLY = path.join(__dirname, '..', 'helpers', 'apply-ops.js');

interface Stack {
  dir: string;
  lowerdir: string;
  upper: string;
  work: string;
  mnt: string;
}

function makeStack(base: string, name: string, seed: number): Stack {
  const dir = path.join(base, name);
  const spec = randomStack(seed, 4);
  // The upper holds what an overlay writes (char-device whiteouts, opaque=y);
  // the lowers every form the kernel reads, xattr whiteouts included.
  const [upper] = writeStack(path.join(dir, 'upper'), spec.slice(0, 1), writtenForms);
  const lowers = writeStack(path.join(dir, 'lower'), spec.slice(1), kernelForms);
  const work = path.join(dir, 'work');
  const mnt = path.join(dir, 'mnt');
  fs.mkdirSync(work);
  fs.mkdirSync(mnt);
  return { dir, lowerdir: lowers.join(':'), upper, work, mnt };
}

function options(s: Stack): string {
  return `lowerdir=${s.lowerdir},upperdir=${s.upper},workdir=${s.work}`;
}

/** Runs the sequence in a child process: [op, kernel result, layerfs result] per step. */
function applyOps(kernelRoot: string, layerfsRoot: string, seed: number, count: number, pathsFile: string, lowerdir: string): [FsOp, string, string][] {
  const r = spawnSync(process.execPath, [APPLY, kernelRoot, layerfsRoot, String(seed), String(count), pathsFile, lowerdir], {
    encoding: 'utf8',
    timeout: 300000,
    maxBuffer: 256 << 20,
  });
  if (r.status !== 0) throw new Error(`apply-ops failed (${r.signal ?? r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as [FsOp, string, string][];
}

interface FsOp {
  kind: string;
  path?: string;
  to?: string;
}

/** mtimes: exact when older than the run, "during the run" on both sides otherwise. */
function diffTimes(a: Record<string, bigint>, b: Record<string, bigint>, start: bigint): string[] {
  const out: string[] = [];
  for (const k of Object.keys(a)) {
    if (b[k] === undefined) continue;
    const recentA = a[k] >= start;
    const recentB = b[k] >= start;
    if (recentA !== recentB || (!recentA && a[k] !== b[k])) out.push(`${k}: mtime kernel=${a[k]} layerfs=${b[k]}`);
  }
  return out.sort();
}

function mergedTimes(root: string): Record<string, bigint> {
  const out: Record<string, bigint> = {};
  const walk = (rel: string) => {
    let st: fs.BigIntStats;
    try {
      st = fs.lstatSync(rel ? path.join(root, rel) : root, { bigint: true });
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return; // kernel: listed whiteout (see snapshot)
      throw err;
    }
    out[rel || '/'] = st.mtimeNs;
    if (st.isDirectory()) for (const n of fs.readdirSync(rel ? path.join(root, rel) : root)) walk(rel ? `${rel}/${n}` : n);
  };
  walk('');
  return out;
}

describeIfKernelOverlay('write path: kernel overlayfs vs layerfs, random operation sequences', () => {
  let base: string;
  const mounts: Mounted[] = [];

  beforeEach(() => {
    base = tmpdir('lfs-wdiff-');
  });

  afterEach(async () => {
    for (const m of mounts.splice(0)) await m.unmount();
    expect(anyMountUnder(base)).toBe(false);
    fs.rmSync(base, { recursive: true, force: true });
  });

  for (const seed of SEEDS) {
    // Every fourth seed bounds the daemon's node table far below the tree's
    // size, so the kernel is made to drop nodes all through the run.
    const maxNodes = seed % 4 === 0 ? 12 : undefined;
    test(`seed ${seed}: ${OPS} operations, same results, same trees, same upper${maxNodes ? `, max_nodes=${maxNodes}` : ''}`, async () => {
      const spec = randomStack(seed, 4);
      const k = makeStack(base, 'kernel', seed);
      const l = makeStack(base, 'layerfs', seed);
      const pathsFile = path.join(base, 'paths.json');
      fs.writeFileSync(pathsFile, JSON.stringify(stackPaths(spec)));
      const start = BigInt(Date.now() - 1000) * 1000000n;

      const km = mountKernelOverlay(options(k), k.mnt);
      mounts.push(km);
      const statsFile = path.join(base, 'stats.json');
      const lm = await mountLayerfs(options(l) + (maxNodes ? `,max_nodes=${maxNodes}` : ''), l.mnt, [], { LAYERFS_STATS_FILE: statsFile });
      mounts.push(lm);
      const t = Date.now();
      const steps = applyOps(k.mnt, l.mnt, seed, OPS, pathsFile, k.lowerdir);
      const ms = Date.now() - t;
      if (process.env.LAYERFS_DIFF_DUMP) fs.writeFileSync(`${process.env.LAYERFS_DIFF_DUMP}.${seed}.json`, JSON.stringify(steps));
      const kr = steps.map((s) => s[1]);
      const divergent = steps.map(([op, kernel, layerfs], i) => ({ i, op, kernel, layerfs })).filter((d) => d.kernel !== d.layerfs);
      const kTree = snapshot(k.mnt);
      const lTree = snapshot(l.mnt);
      const merged = [...diffTrees(kTree.tree, lTree.tree, 'kernel', 'layerfs'), ...diffTimes(mergedTimes(k.mnt), mergedTimes(l.mnt), start)];
      const failures = new Map<string, number>();
      for (const x of kr) if (!x.startsWith('ok')) failures.set(x, (failures.get(x) ?? 0) + 1);
      const errors = [...failures.values()].reduce((a, b) => a + b, 0);
      const { nodes, evictions } = await daemonStats(lm, statsFile);
      await lm.unmount();
      await km.unmount();
      mounts.splice(0);
      if (process.env.LAYERFS_DIFF_KEEP) spawnSync("cp", ["-a", base, `${process.env.LAYERFS_DIFF_KEEP}.${seed}`]);
      const ku = layerSnapshot(k.upper);
      const lu = layerSnapshot(l.upper);
      const upper = [...diffTrees(ku.tree, lu.tree, 'kernel', 'layerfs'), ...diffTimes(ku.mtimes, lu.mtimes, start)];
      console.log(
        `seed ${seed}: ${steps.length} ops in ${ms} ms, ${errors} failed on the kernel, ${divergent.length} divergent results, ` +
          `${Object.keys(kTree.tree).length} merged entries, ${merged.length} merged differences, ` +
          `${Object.keys(ku.tree).length} upper entries, ${upper.length} upper differences, ${nodes} nodes held, ${evictions} evicted; failures: ${[...failures].map(([c, n]) => `${c} ${n}`).join(', ')}`,
      );
      if (maxNodes) expect(evictions).toBeGreaterThan(0);
      expect(divergent.slice(0, 10)).toEqual([]);
      expect(merged.slice(0, 20)).toEqual([]);
      expect(upper.slice(0, 20)).toEqual([]);

      // Swap: each implementation mounts the upper the other one wrote.
      const kOnL = mountKernelOverlay(options(l), l.mnt);
      mounts.push(kOnL);
      const lOnK = await mountLayerfs(options(k), k.mnt);
      mounts.push(lOnK);
      const swapped = diffTrees(snapshot(l.mnt).tree, snapshot(k.mnt).tree, 'kernel-on-layerfs-upper', 'layerfs-on-kernel-upper');
      expect(swapped.slice(0, 20)).toEqual([]);
      expect(snapshot(k.mnt).tree).toEqual(kTree.tree);
    });
  }
});
