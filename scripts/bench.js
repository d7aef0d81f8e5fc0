#!/usr/bin/env node
// npm run bench [-- --paths N --runs R --only find,stat --impl kernel,layerfs]
//
// Times kernel overlayfs, fuse-overlayfs and layerfs on one generated,
// reproducible Nix-like store, in the same run, alternating between them.
// Each workload runs cold (page cache dropped, fresh mount and upper), then
// hot (the same workload again on that mount) and hot2 (a third time). hot2
// is the steady state: on any FUSE filesystem the first repeat of a walk
// still asks for each directory's attributes once, because the kernel drops
// a FUSE directory's cached atime whenever it reads the directory from the
// daemon (fuse_invalidate_atime) and find fstat()s every directory.
// layerfs mounts with its lower index (built once, timed, before the runs;
// --no-index mounts without). Prints medians, the ratios
// layerfs/fuse-overlayfs and layerfs/kernel, layerfs's peak RSS and the
// system calls it made on lower layers during each workload.
// Needs root (mount -t overlay, drop_caches). Never part of `npm test`.
'use strict';
const cp = require('child_process');
const fs = require('fs');
const path = require('path');

const ROOT = path.join(__dirname, '..');
const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');

function die(msg) {
  process.stderr.write(`bench: ${msg}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const o = { paths: 4000, runs: 3, dir: '/tmp/layerfs-bench', only: null, impl: ['kernel', 'fuse-overlayfs', 'layerfs'], bigMiB: 1024, keep: false, index: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) die(`${a} needs a value`);
      return argv[++i];
    };
    const num = (v) => {
      if (!/^\d+$/.test(v)) die(`${a} needs a whole number, not '${v}'`);
      return Number(v);
    };
    if (a === '--paths') o.paths = num(val());
    else if (a === '--runs') o.runs = num(val());
    else if (a === '--dir') o.dir = val();
    else if (a === '--only') o.only = val().split(',');
    else if (a === '--impl') o.impl = val().split(',');
    else if (a === '--big-mib') o.bigMiB = num(val());
    else if (a === '--no-index') o.index = false;
    else if (a === '--help' || a === '-h') {
      process.stdout.write('usage: npm run bench -- [--paths N] [--runs R] [--only W1,W2] [--impl kernel,fuse-overlayfs,layerfs] [--big-mib M] [--dir D] [--no-index]\n');
      process.exit(0);
    } else die(`unknown argument '${a}' (see --help)`);
  }
  if (o.runs < 1) die('--runs must be at least 1');
  if (o.paths < 10) die('--paths must be at least 10');
  for (const i of o.impl) if (!['kernel', 'fuse-overlayfs', 'layerfs'].includes(i)) die(`unknown implementation '${i}'`);
  return o;
}

// ---- the store -------------------------------------------------------------

// The project's seeded PRNG (mulberry32): the same store for the same --paths, everywhere.
const { rng } = require('../test/helpers/rng');

const ALPHA = '0123456789abcdfghijklmnpqrsvwxyz';
const PNAMES = ['glibc', 'bash', 'coreutils', 'python3', 'perl', 'openssl', 'zlib', 'gcc', 'libffi', 'ncurses', 'curl', 'git', 'nodejs', 'rustc', 'llvm'];

/** Writes the lower store: ~12 inodes per store path, one directory of 4500 entries, one big file. */
function generateStore(o, lower) {
  const stamp = path.join(lower, '.bench-stamp');
  const want = `paths=${o.paths} big=${o.bigMiB}`;
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === want) return readManifest(lower);
  fs.rmSync(lower, { recursive: true, force: true });
  const store = path.join(lower, 'store');
  fs.mkdirSync(store, { recursive: true });
  const r = rng(0x5eed);
  const files = [];
  let inodes = 0;
  const t0 = Date.now();
  for (let i = 0; i < o.paths; i++) {
    let h = '';
    for (let k = 0; k < 32; k++) h += ALPHA[Math.floor(r() * 32)];
    const name = `${h}-${PNAMES[i % PNAMES.length]}-${1 + (i % 9)}.${i % 13}`;
    const p = path.join(store, name);
    const dirs = ['bin', 'lib', 'share/doc', 'nix-support'];
    for (const d of dirs) fs.mkdirSync(path.join(p, d), { recursive: true });
    inodes += 6;
    const n = 3 + Math.floor(r() * 8);
    for (let k = 0; k < n; k++) {
      const d = dirs[k % dirs.length];
      const f = path.join(p, d, `f${k}`);
      // Mostly small files, some larger: about 5.7 KB on average.
      const size = r() < 0.9 ? Math.floor(r() * 6000) : Math.floor(r() * 20000);
      fs.writeFileSync(f, Buffer.alloc(size, k + 65));
      files.push(path.relative(lower, f));
      inodes++;
    }
    fs.symlinkSync(`../lib/f1`, path.join(p, 'bin', 'link'));
    inodes++;
    if (i % 5000 === 4999) process.stderr.write(`  generated ${i + 1}/${o.paths} store paths\n`);
  }
  const big = path.join(store, `${'b'.repeat(32)}-bigdir`, 'share', 'icons');
  fs.mkdirSync(big, { recursive: true });
  for (let k = 0; k < 4500; k++) fs.writeFileSync(path.join(big, `icon-${k}.png`), 'x');
  inodes += 4503;
  const bigFile = path.join(store, `${'c'.repeat(32)}-bigfile`, 'data.bin');
  fs.mkdirSync(path.dirname(bigFile), { recursive: true });
  const fd = fs.openSync(bigFile, 'w');
  const chunk = Buffer.alloc(1 << 20);
  for (let k = 0; k < chunk.length; k += 4) chunk.writeUInt32LE((k * 2654435761) >>> 0, k);
  for (let m = 0; m < o.bigMiB; m++) fs.writeSync(fd, chunk);
  fs.closeSync(fd);
  inodes += 3;
  const manifest = { files, bigDir: path.relative(lower, big), bigFile: path.relative(lower, bigFile), inodes };
  fs.writeFileSync(path.join(lower, '.bench-manifest.json'), JSON.stringify(manifest));
  fs.writeFileSync(stamp, want);
  process.stderr.write(`  store: ${o.paths} paths, ${inodes} inodes, generated in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  return manifest;
}

function readManifest(lower) {
  return JSON.parse(fs.readFileSync(path.join(lower, '.bench-manifest.json'), 'utf8'));
}

// ---- mounts ------------------------------------------------------------------

function sh(cmd, args, opts = {}) {
  const r = cp.spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}: ${(r.stderr || '').trim()}`);
  return r.stdout;
}

function ensureFuseOverlayfs() {
  if (cp.spawnSync('fuse-overlayfs', ['--version']).status === 0) return true;
  process.stderr.write('  fuse-overlayfs missing: apt-get install -y fuse-overlayfs\n');
  const r = cp.spawnSync('sh', ['-c', 'apt-get install -y fuse-overlayfs >/dev/null 2>&1 || (apt-get update >/dev/null 2>&1 && apt-get install -y fuse-overlayfs >/dev/null 2>&1)']);
  return r.status === 0 && cp.spawnSync('fuse-overlayfs', ['--version']).status === 0;
}

function dropCaches() {
  sh('sync', []);
  fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
}

class Mount {
  constructor(impl, base, lower, indexDir, extra) {
    this.impl = impl;
    this.dir = fs.mkdtempSync(path.join(base, `${impl}-`));
    for (const d of ['upper', 'work', 'mnt']) fs.mkdirSync(path.join(this.dir, d));
    this.mnt = path.join(this.dir, 'mnt');
    this.statsFile = path.join(this.dir, 'stats.json');
    const opts = `lowerdir=${lower},upperdir=${path.join(this.dir, 'upper')},workdir=${path.join(this.dir, 'work')}${extra ? `,${extra}` : ''}`;
    if (impl === 'kernel') sh('mount', ['-t', 'overlay', 'overlay', '-o', opts, this.mnt]);
    else if (impl === 'fuse-overlayfs') sh('fuse-overlayfs', ['-o', opts, this.mnt]);
    else {
      const pidfile = path.join(this.dir, 'pid');
      const lfOpts = indexDir === undefined ? opts : `${opts},lowerindex=on,index_dir=${indexDir}`;
      // layerfs-traced: the same mount recording every request (the tracing-overhead ratio).
      const trace = impl === TRACED ? [`--trace=${path.join(this.dir, 'trace.sqlite')}`] : [];
      sh('node', [CLI, 'mount', '-o', lfOpts, ...trace, '--pidfile', pidfile, '--log', path.join(this.dir, 'log'), this.mnt], {
        env: { ...process.env, LAYERFS_STATS_FILE: this.statsFile },
      });
      this.pid = Number(fs.readFileSync(pidfile, 'utf8'));
    }
  }

  /** layerfs only: its counters now (asks the daemon with SIGUSR2). */
  stats() {
    if (this.pid === undefined) return undefined;
    fs.rmSync(this.statsFile, { force: true });
    process.kill(this.pid, 'SIGUSR2');
    const until = Date.now() + 5000;
    while (!fs.existsSync(this.statsFile) && Date.now() < until) cp.spawnSync('sleep', ['0.02']);
    for (let i = 0; i < 50; i++) {
      try {
        return JSON.parse(fs.readFileSync(this.statsFile, 'utf8'));
      } catch {
        cp.spawnSync('sleep', ['0.02']);
      }
    }
    return undefined;
  }

  unmount() {
    const r = cp.spawnSync('umount', [this.mnt]);
    if (r.status !== 0) cp.spawnSync('umount', ['-l', this.mnt]);
    if (this.pid !== undefined) {
      const until = Date.now() + 5000;
      while (Date.now() < until) {
        try {
          process.kill(this.pid, 0);
        } catch {
          break;
        }
        cp.spawnSync('sleep', ['0.05']);
      }
    }
    // The directory stays until the whole bench is over: ext4 allocates new
    // inodes slowly next to many recently deleted ones (recently_deleted()
    // in find_inode_bit: ~800 us per create here, against ~20 us), so
    // deleting one implementation's upper would slow the creates of the next.
  }
}

/** A sysfs file's contents, or undefined where there is none. */
function readSys(f) {
  try {
    return fs.readFileSync(f, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * How an idle CPU waits (cpuidle driver; guest halt-polling on VMs). On a VM
 * without halt-polling every FUSE reply wakes a halted vCPU, which is most
 * of a round trip (docs/DESIGN.md, "Benchmark passes"): it moves the first
 * repeat of find by 2x, so the figures say which setting they were made with.
 */
function cpuIdle() {
  const driver = readSys('/sys/devices/system/cpu/cpuidle/current_driver');
  if (driver === undefined) return undefined;
  const poll = readSys('/sys/module/haltpoll/parameters/guest_halt_poll_ns');
  return `cpuidle driver ${driver}${poll !== undefined ? `, guest_halt_poll_ns=${poll}` : ''}`;
}

/**
 * Proactive reclaim by DAMON (a kdamond with a `pageout` scheme, as some VMs
 * run to hand idle memory back to the host): it drops page-cache pages it
 * judges idle without any memory pressure, so a hot pass re-reads those
 * files from the layers (hot tar's lower calls; docs/DESIGN.md, "Benchmark
 * passes"). Reported like cpuIdle, so the figures say what they ran under.
 */
function damonPageout() {
  const base = '/sys/kernel/mm/damon/admin/kdamonds';
  const ls = (d) => {
    try {
      return fs.readdirSync(d).filter((n) => /^\d+$/.test(n));
    } catch {
      return [];
    }
  };
  const found = [];
  for (const k of ls(base)) {
    if (readSys(`${base}/${k}/state`) !== 'on') continue;
    for (const c of ls(`${base}/${k}/contexts`)) {
      const ctx = `${base}/${k}/contexts/${c}`;
      const aggrUs = Number(readSys(`${ctx}/monitoring_attrs/intervals/aggr_us`));
      for (const sch of ls(`${ctx}/schemes`)) {
        if (readSys(`${ctx}/schemes/${sch}/action`) !== 'pageout') continue;
        const age = Number(readSys(`${ctx}/schemes/${sch}/access_pattern/age/min`));
        found.push(`kdamond ${k} pages out regions idle >= ${((age * aggrUs) / 1e6).toFixed(0)} s`);
      }
    }
  }
  return found.length === 0 ? undefined : `DAMON proactive reclaim on (${found.join('; ')})`;
}

/**
 * What one thread waking another costs on this machine: two threads hand a
 * flag back and forth (Atomics.wait/notify, i.e. futex), so each round trip
 * is two wake-ups. A FUSE request is at least one (the reply wakes the
 * caller; the daemon spins, so the request finds it awake), and the first
 * repeat of find or a stat walk sends one GETATTR per directory
 * (docs/DESIGN.md, "Benchmark passes"): this is the floor of that cost,
 * whatever the filesystem does. Measured on the 2-vCPU VM of these figures
 * (no halt-polling): 79-103 us, and 74-133 us for two processes
 * ping-ponging a byte over pipes, against 8 us for those two pinned to
 * one CPU: it is the halted vCPU's wake-up.
 */
function wakeRoundTripUs(n = 20000) {
  const { Worker } = require('worker_threads');
  const flags = new Int32Array(new SharedArrayBuffer(8));
  const w = new Worker(
    `const {workerData:{flags,n}}=require('worker_threads');
     for(let i=0;i<n;i++){while(Atomics.load(flags,0)===0)Atomics.wait(flags,0,0);
       Atomics.store(flags,0,0);Atomics.store(flags,1,1);Atomics.notify(flags,1);}`,
    { eval: true, workerData: { flags, n } },
  );
  return new Promise((resolve, reject) => {
    w.once('error', reject);
    w.once('online', () => {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) {
        Atomics.store(flags, 0, 1);
        Atomics.notify(flags, 0);
        while (Atomics.load(flags, 1) === 0) Atomics.wait(flags, 1, 0);
        Atomics.store(flags, 1, 0);
      }
      const us = Number(process.hrtime.bigint() - t0) / n / 1000;
      void w.terminate().then(() => resolve(us));
    });
  });
}

// ---- workloads -------------------------------------------------------------------

/** Runs a shell command; returns wall seconds. */
function timed(cmd) {
  const t0 = process.hrtime.bigint();
  const r = cp.spawnSync('sh', ['-c', cmd], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`'${cmd}' failed (exit ${r.status}): ${(r.stderr || '').trim().split('\n')[0]}`);
  return s;
}

/** Runs a node snippet that times itself (node's own start-up is not the workload). */
function timedNode(code, arg) {
  const r = cp.spawnSync('node', ['-e', `const fs=require('fs');const a=JSON.parse(process.argv[1]);const t0=process.hrtime.bigint();${code};process.stdout.write(String(Number(process.hrtime.bigint()-t0)/1e9))`, JSON.stringify(arg)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`node workload failed: ${(r.stderr || '').trim().split('\n').slice(-3).join(' ')}`);
  return Number(r.stdout);
}

const PASSES = ['cold', 'hot', 'hot2'];
/** A layerfs mount with tracing on; run for these workloads, reported as a ratio to plain layerfs. */
const TRACED = 'layerfs-traced';
const TRACED_WORKLOADS = ['find', 'stat'];

/**
 * Mount options a workload adds, per implementation. copyup-400-nosync is the
 * copy-up workload with nobody syncing: kernel overlayfs and layerfs fsync
 * each copied file before renaming it into place (a crash then never leaves
 * a short file hiding the lower one), fuse-overlayfs 1.10 never does, so the
 * plain row compares unlike things; with `volatile` the other two skip the
 * fsync too, and the row shows the cost of everything else.
 */
const WORKLOAD_OPTS = { 'copyup-400-nosync': { kernel: 'volatile', layerfs: 'volatile' } };

function workloads(m) {
  const lowerFiles = m.files;
  const copyup = (mnt, pass) =>
    timedNode(`for(const f of a.files){const fd=fs.openSync(a.mnt+'/'+f,'a');fs.writeSync(fd,'x');fs.closeSync(fd)}`, {
      mnt,
      files: lowerFiles.filter((_, i) => i % 3 === PASSES.indexOf(pass)).slice(0, 400),
    });
  return {
    find: (mnt) => timed(`find ${mnt}/store -type f > /dev/null`),
    stat: (mnt) => timed(`find ${mnt}/store -printf '%i %s %m %U %T@\\n' > /dev/null`),
    'list-4500': (mnt) => timed(`ls -l ${mnt}/${m.bigDir} > /dev/null`),
    tar: (mnt) => timed(`tar -C ${mnt} -cf - store | cat > /dev/null`),
    'negative-3000': (mnt) =>
      timedNode(
        `let n=0;for(let i=0;i<3000;i++){const p=i%3===0?a.mnt+'/store/missing-'+i:a.mnt+'/'+a.dirs[i%a.dirs.length]+'/missing-'+i;try{fs.lstatSync(p)}catch(e){if(e.code!=='ENOENT')throw e;n++}}if(n!==3000)throw new Error('found '+(3000-n))`,
        { mnt, dirs: lowerFiles.slice(0, 500).map((f) => path.dirname(f)) },
      ),
    'create-2000': (mnt, pass) =>
      timedNode(`const d=a.mnt+'/store/new-'+a.pass;fs.mkdirSync(d);const b=Buffer.alloc(100,97);for(let i=0;i<2000;i++)fs.writeFileSync(d+'/f'+i,b)`, { mnt, pass }),
    'copyup-400': copyup,
    'copyup-400-nosync': copyup,
    'read-1g': (mnt) => timed(`dd if=${mnt}/${m.bigFile} of=/dev/null bs=1M 2>/dev/null`),
  };
}

// ---- the run ------------------------------------------------------------------------

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

function lowerCalls(before, after) {
  if (before === undefined || after === undefined) return undefined;
  let total = 0;
  let lstat = 0;
  after.layers.forEach((l, i) => {
    if (l.name === 'upper') return;
    for (const [k, v] of Object.entries(l.calls)) {
      const d = v - (before.layers[i].calls[k] ?? 0);
      total += d;
      if (k === 'lstat') lstat += d;
    }
  });
  return { total, lstat };
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (process.geteuid() !== 0) die('needs root (mount -t overlay, /proc/sys/vm/drop_caches)');
  if (!fs.existsSync(CLI)) die(`${CLI} missing: run 'npm run build' first`);
  if (o.impl.includes('fuse-overlayfs') && !ensureFuseOverlayfs()) {
    process.stderr.write('  fuse-overlayfs could not be installed: left out\n');
    o.impl = o.impl.filter((i) => i !== 'fuse-overlayfs');
  }
  fs.mkdirSync(o.dir, { recursive: true });
  const lower = path.join(o.dir, `lower-${o.paths}`);
  process.stderr.write(`bench: store of ${o.paths} paths in ${lower}\n`);
  const manifest = generateStore(o, lower);
  const runBase = fs.mkdtempSync(path.join(o.dir, 'run-'));
  const all = workloads(manifest);
  let indexDir;
  if (o.index && o.impl.includes('layerfs')) {
    indexDir = path.join(o.dir, `index-${o.paths}`);
    fs.rmSync(indexDir, { recursive: true, force: true });
    const t0 = process.hrtime.bigint();
    sh('node', [CLI, 'index', 'build', '--quiet', '--index-dir', indexDir, lower]);
    manifest.indexSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    process.stderr.write(`bench: lower index built in ${manifest.indexSeconds.toFixed(1)} s\n`);
  }
  const names = o.only ?? Object.keys(all);
  for (const n of names) if (!(n in all)) die(`unknown workload '${n}' (${Object.keys(all).join(', ')})`);
  // results[workload][mode][impl] = seconds[]; calls[workload][mode] = [{total,lstat}]
  const results = {};
  const calls = {};
  let peakRss = 0;
  const mounts = [];
  const cleanup = () => {
    for (const m of mounts.splice(0)) m.unmount();
  };
  // Workloads run with spawnSync, which blocks signal delivery to JavaScript:
  // SIGINT/SIGTERM only set a flag, checked between workloads (the event
  // loop is given a turn there); the finally blocks then unmount everything.
  let stopping = false;
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => (stopping = true));
  try {
    for (let run = 0; run < o.runs; run++) {
      for (const w of names) {
        // Alternate the order between runs, so no implementation always goes first.
        const impls = o.impl.includes('layerfs') && TRACED_WORKLOADS.includes(w) ? [...o.impl, TRACED] : o.impl;
        const order = impls.map((_, i) => impls[(i + run) % impls.length]);
        for (const impl of order) {
          await new Promise((r) => setImmediate(r));
          if (stopping) throw new Error('interrupted');
          dropCaches();
          const lf = impl === 'layerfs' || impl === TRACED;
          const m = new Mount(impl, runBase, lower, lf ? indexDir : undefined, WORKLOAD_OPTS[w]?.[lf ? 'layerfs' : impl]);
          mounts.push(m);
          try {
            const times = [];
            let before = m.stats();
            for (const pass of PASSES) {
              const t = all[w](m.mnt, pass);
              const after = m.stats();
              times.push(t);
              (((results[w] ??= {})[pass] ??= {})[impl] ??= []).push(t);
              if (impl === 'layerfs') ((calls[w] ??= {})[pass] ??= []).push(lowerCalls(before, after));
              before = after;
            }
            if (impl === 'layerfs') peakRss = Math.max(peakRss, before?.peakRss ?? 0);
            process.stderr.write(`  run ${run + 1}/${o.runs} ${w.padEnd(14)} ${impl.padEnd(15)} ${PASSES.map((p, i) => `${p} ${times[i].toFixed(3)} s`).join('  ')}\n`);
          } finally {
            mounts.splice(mounts.indexOf(m), 1);
            m.unmount();
          }
        }
      }
    }
  } finally {
    cleanup();
    fs.rmSync(runBase, { recursive: true, force: true });
  }
  report(o, manifest, names, results, calls, peakRss, await wakeRoundTripUs());
}

function report(o, manifest, names, results, calls, peakRss, wakeUs) {
  const cols = ['workload', 'mode', ...o.impl.map((i) => `${i} s`), 'lf/fo', 'lf/kernel', 'lower calls', 'lower lstat'];
  const rows = [];
  const json = [];
  for (const w of names) {
    for (const mode of PASSES) {
      const med = Object.fromEntries(o.impl.map((i) => [i, median(results[w][mode][i])]));
      const c = calls[w]?.[mode]?.filter((x) => x !== undefined) ?? [];
      const lc = c.length ? median(c.map((x) => x.total)) : NaN;
      const ll = c.length ? median(c.map((x) => x.lstat)) : NaN;
      const ratio = (a, b) => (a === undefined || b === undefined || Number.isNaN(a) || Number.isNaN(b) ? '-' : (a / b).toFixed(2));
      rows.push([w, mode, ...o.impl.map((i) => med[i].toFixed(3)), ratio(med.layerfs, med['fuse-overlayfs']), ratio(med.layerfs, med.kernel), Number.isNaN(lc) ? '-' : String(lc), Number.isNaN(ll) ? '-' : String(ll)]);
      json.push({ workload: w, mode, median: med, runs: results[w][mode], lowerCalls: lc, lowerLstat: ll });
    }
  }
  const width = cols.map((c, i) => Math.max(c.length, ...rows.map((r) => r[i].length)));
  const line = (r) => r.map((x, i) => (i < 2 ? x.padEnd(width[i]) : x.padStart(width[i]))).join('  ');
  process.stdout.write(`\nlayerfs bench: ${o.paths} store paths, ${manifest.inodes} inodes, ${o.runs} runs, medians (wall seconds); layerfs ${manifest.indexSeconds !== undefined ? `with its lower index (built in ${manifest.indexSeconds.toFixed(1)} s)` : 'without a lower index'}\n`);
  process.stdout.write(line(cols) + '\n' + width.map((n) => '-'.repeat(n)).join('  ') + '\n');
  for (const r of rows) process.stdout.write(line(r) + '\n');
  process.stdout.write(`layerfs daemon peak RSS: ${(peakRss / 1048576).toFixed(1)} MiB\n`);
  const idle = cpuIdle();
  if (idle !== undefined) process.stdout.write(`cpu idle: ${idle}\n`);
  process.stdout.write(`wake-up: one thread to another and back ${wakeUs.toFixed(1)} us (a FUSE request costs at least half of that; kernel overlayfs none)\n`);
  const reclaim = damonPageout();
  if (reclaim !== undefined) process.stdout.write(`page reclaim: ${reclaim}\n`);
  const traced = names.filter((w) => results[w].cold[TRACED] !== undefined);
  if (traced.length > 0) {
    process.stdout.write('tracing overhead (layerfs with --trace / without, medians):');
    for (const w of traced) {
      for (const mode of PASSES) {
        const r = median(results[w][mode][TRACED]) / median(results[w][mode].layerfs);
        process.stdout.write(` ${w} ${mode} ${r.toFixed(2)}`);
        json.push({ workload: w, mode, tracedOverUntraced: r, runs: results[w][mode][TRACED] });
      }
    }
    process.stdout.write('\n');
  }
  const out = path.join(o.dir, `results-${o.paths}.json`);
  fs.writeFileSync(out, JSON.stringify({ paths: o.paths, inodes: manifest.inodes, runs: o.runs, index: manifest.indexSeconds !== undefined, indexSeconds: manifest.indexSeconds, peakRss, wakeRoundTripUs: wakeUs, results: json }, null, 1));
  process.stdout.write(`(all runs: ${out})\n`);
}

main().catch((err) => die(err.message));
