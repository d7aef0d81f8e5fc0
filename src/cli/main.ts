#!/usr/bin/env node
// The layerfs command line: argument parsing only. Filesystem work lives in
// src/mount (mount lifecycle) and src/core (the overlay).
//
// Exit status: 0 success; 1 the operation failed (mount failed, busy, no
// such mount, ...); 2 bad input (options, layers, mountpoint); nothing is
// mounted on 1 or 2. `explain` exits 3 when the path is not in the merged
// view (hidden or absent).
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import yargs, { type Argv } from 'yargs';
import { checkIndex } from '../cache/index-check';
import { buildIndex, defaultIndexDir, type BuildProgress } from '../cache/lower-index';
import { cliEntry, serve, type Logger } from '../mount/daemon';
import { parseMountOptions, UsageError } from '../mount/options';
import { unmount, UnmountError } from '../mount/unmount';
import { realDir, validateMount } from '../mount/validate';
import type { TraceFilter } from '../trace/filter';
import { parseErrno } from '../trace/record';
import { EXIT_ABSENT, runExplain, runInvalidate, runStatus, runTraceQuery, runTraceSummary, runTraceSwitch, runTraceTail } from './observe';

// Layer I/O runs on libuv's threadpool; with several slow layers the default
// 4 threads would be the limit. Read by libuv when the pool first starts,
// which is after this line (imports do no asynchronous I/O).
process.env.UV_THREADPOOL_SIZE ??= '16';

const EXIT_FAIL = 1;
const EXIT_USAGE = 2;
const READY_ENV = 'LAYERFS_DAEMON_IPC';

function die(msg: string, status: number): never {
  process.stderr.write(`layerfs: ${msg}\n`);
  process.exit(status);
}

interface MountArgs {
  first: string;
  second?: string;
  o?: string[];
  foreground: boolean;
  verbose: boolean;
  pidfile?: string;
  log?: string;
  trace?: string;
}

function mountOptions(y: Argv) {
  return y
    .usage('layerfs [mount] [SOURCE] MOUNTPOINT -o lowerdir=L1[:L2...][,upperdir=U,workdir=W][,OPTIONS]')
    .positional('first', { type: 'string', demandOption: true, describe: 'MOUNTPOINT, or SOURCE when a mountpoint follows' })
    .positional('second', { type: 'string', describe: 'MOUNTPOINT after SOURCE (SOURCE is the name shown in the mount table)' })
    .option('o', {
      type: 'string',
      requiresArg: true,
      // Repeated -o add up; not `array`, which would swallow the mountpoint after it.
      coerce: (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]),
      describe:
        'mount options: lowerdir=L1:L2 (leftmost is the top layer), upperdir=U, workdir=W, ro, userxattr, ' +
        'allow_other/no_allow_other, default_permissions/no_default_permissions, fsname=NAME, ' +
        'squash_to_root, squash_to_uid=N, squash_to_gid=N, uidmapping=D:S:N[:...], gidmapping=..., xattr_permissions=0|1|2, and the ' +
        'standard mount flags (dev, nodev, suid, nosuid, exec, noexec, noatime, ...). Escape ":" in a ' +
        'lower path as "\\:" and "," as "\\,".',
    })
    .option('foreground', { alias: 'f', type: 'boolean', default: false, describe: 'stay in the foreground' })
    .option('verbose', { alias: 'v', type: 'boolean', default: false, describe: 'report layers, probes and decisions' })
    .option('pidfile', { type: 'string', describe: 'write the serving process id to this file' })
    .option('log', { type: 'string', describe: 'file that receives the daemon\'s messages once it is in the background' })
    .option('trace', {
      type: 'string',
      describe: 'record every request from the start, into FILE (default: in the runtime directory; see layerfs status). Same as -o trace[=FILE]; the ring is bounded by -o trace_max_mb=N (64)',
    });
}

function makeLogger(verbose: boolean, sendToParent: boolean): Logger & { detach(logFile?: string): void } {
  let sink = (line: string) => {
    if (sendToParent && process.send) process.send({ kind: 'log', line });
    else process.stderr.write(`layerfs: ${line}\n`);
  };
  return {
    info: (m) => verbose && sink(m),
    error: (m) => sink(m),
    detach(logFile) {
      if (logFile === undefined) {
        sink = () => undefined;
        return;
      }
      const fd = fs.openSync(logFile, 'a');
      sink = (line) => fs.writeSync(fd, `${new Date().toISOString()} ${line}\n`);
    },
  };
}

async function runMount(a: MountArgs): Promise<void> {
  // [SOURCE] MOUNTPOINT, as mount(8) helpers and fuse-overlayfs take them.
  const [source, mountpoint] = a.second === undefined ? [undefined, a.first] : [a.first, a.second];
  const opts = parseMountOptions(a.o ?? [], source);
  if (a.trace !== undefined) opts.trace = a.trace;
  // Relative to where the command was typed, not to the daemon.
  if (opts.trace !== undefined && opts.trace !== '') opts.trace = path.resolve(opts.trace);
  const spec = validateMount(mountpoint, opts);
  const asChild = process.env[READY_ENV] === '1' && typeof process.send === 'function';
  if (!a.foreground && !asChild) return spawnDaemon();
  const log = makeLogger(a.verbose, asChild);
  // Written before mounting: a pidfile that cannot be written must not leave a mount behind.
  if (a.pidfile !== undefined) fs.writeFileSync(a.pidfile, `${process.pid}\n`);
  let served;
  try {
    served = await serve(spec, opts, log, (a.o ?? []).join(','));
  } catch (err) {
    if (a.pidfile !== undefined) fs.rmSync(a.pidfile, { force: true });
    throw err;
  }
  if (asChild) {
    process.send!({ kind: 'ready' });
    process.disconnect();
    log.detach(a.log);
  }
  process.exitCode = await served.ended;
  // Layer I/O may still be pending on a stalled layer; leave now.
  process.exit();
}

/**
 * V8 flags for the daemon, which only take effect on the command line: a
 * young generation of 4 MiB semi-spaces instead of 16 (V8 keeps the pages it
 * once touched: ~24 MiB of RSS after a walk of a 1M-entry store, with no
 * measured slowdown), and --optimize-for-size: after find and stat walks of
 * a 1M-entry indexed store the daemon holds 169 / 184 MiB with it and 192 /
 * 203 MiB without, against a goal of 200 MB; it costs creates ~8 % and
 * copy-ups nothing measurable (docs/DESIGN.md "Memory at scale"), once the
 * daemon has left the reduce-memory mode it can start in (collectAfterStartup
 * in mount/daemon.ts). --interrupt-budget=16384 (V8's default is 67584):
 * functions are handed to the optimising compiler after a quarter of the
 * bytecode budget; warm batches of 400 copy-ups took 0.21-0.28 s against
 * 0.28-0.41 s (7+7 fresh daemons, interleaved), walks and creates unchanged
 * (docs/DESIGN.md "Write path"). A daemon started with --foreground runs
 * with whatever flags and environment its node was given.
 */
const DAEMON_NODE_FLAGS = ['--max-semi-space-size=4', '--optimize-for-size', '--interrupt-budget=16384'];

/**
 * glibc makes a malloc arena per thread that allocates (libuv's threadpool,
 * V8's helpers) and keeps each one's freed memory: one arena, as the daemon
 * allocates mostly from its main thread. Left alone if the caller set it.
 */
const DAEMON_ENV = { MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? '1' };

/** Re-runs this command as a detached daemon and returns once its mount is live. */
function spawnDaemon(): Promise<void> {
  const errFile = path.join(os.tmpdir(), `layerfs-${process.pid}-${Date.now()}.err`);
  const errFd = fs.openSync(errFile, 'w+');
  const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, cliEntry, ...process.argv.slice(2), '--foreground'], {
    detached: true,
    stdio: ['ignore', 'ignore', errFd, 'ipc'],
    env: { ...process.env, ...DAEMON_ENV, [READY_ENV]: '1' },
  });
  fs.closeSync(errFd);
  const stderrTail = () => {
    const text = fs.readFileSync(errFile, 'utf8').trim();
    return text.split('\n').filter(Boolean).pop() ?? '';
  };
  return new Promise((resolve) => {
    let settled = false;
    child.on('message', (m: { kind: string; line?: string; message?: string; status?: number }) => {
      if (m.kind === 'log') process.stderr.write(`layerfs: ${m.line}\n`);
      else if (m.kind === 'ready') {
        settled = true;
        fs.rmSync(errFile, { force: true });
        child.unref();
        child.disconnect();
        resolve();
      } else if (m.kind === 'error') {
        settled = true;
        // Anything the daemon printed on stderr goes with our line.
        const tail = stderrTail();
        fs.rmSync(errFile, { force: true });
        die(`${m.message ?? 'mount failed'}${tail ? ` (${tail})` : ''}`, m.status ?? EXIT_FAIL);
      }
    });
    child.on('exit', (code, signal) => {
      if (settled) return;
      const tail = stderrTail();
      fs.rmSync(errFile, { force: true });
      die(`daemon exited before the mount was live (${signal ?? `status ${code}`})${tail ? `: ${tail}` : ''}`, EXIT_FAIL);
    });
  });
}

function fail(err: unknown): never {
  const status = err instanceof UsageError ? EXIT_USAGE : EXIT_FAIL;
  const message = err instanceof Error ? err.message : String(err);
  if (process.env[READY_ENV] === '1' && process.send) {
    process.send({ kind: 'error', message, status }, () => process.exit(status));
    // exit once the message is flushed
    return undefined as never;
  }
  if (!(err instanceof UsageError) && !(err instanceof UnmountError) && process.env.LAYERFS_DEBUG) {
    process.stderr.write(`${(err as Error).stack}\n`);
  }
  die(message, status);
}

/** A progress line for a walk of root (index build, index check), redrawn in place on a terminal. */
function progressBar(root: string): (p: BuildProgress) => void {
  const t0 = Date.now();
  return (p) => {
    // Directories listed out of those found so far: it converges on 1.
    const frac = p.dirsSeen === 0 ? 1 : p.dirsDone / p.dirsSeen;
    const w = 30;
    const n = Math.round(frac * w);
    const rate = p.entries / Math.max(0.001, (Date.now() - t0) / 1000);
    process.stderr.write(`\r${root} [${'#'.repeat(n)}${' '.repeat(w - n)}] ${p.entries} entries, ${p.dirsDone}/${p.dirsSeen} dirs, ${Math.round(rate)}/s`);
  };
}

/** Builds the index of each lower layer; a progress bar on a terminal. */
function runIndexBuild(lowers: string[], dir: string, quiet: boolean): void {
  for (const l of lowers) {
    const root = realDir('lower layer', l);
    const tty = !quiet && process.stderr.isTTY;
    const r = buildIndex(dir, root, tty ? progressBar(root) : undefined);
    if (tty) process.stderr.write('\n');
    if (!quiet) process.stdout.write(`${root}: ${r.entries} entries indexed in ${r.seconds.toFixed(1)} s -> ${r.file}\n`);
  }
}

/**
 * Compares each lower layer with its index: one line per difference (the
 * first `limit`, 0 for all), then a verdict per layer. Exit status 0 when
 * every index matches its layer, 1 when one is stale or missing.
 */
function runIndexCheck(lowers: string[], dir: string, limit: number, quiet: boolean): void {
  if (!Number.isInteger(limit) || limit < 0) throw new UsageError(`--limit needs a whole number (0 for all), not '${limit}'`);
  const roots = lowers.map((l) => realDir('lower layer', l));
  let ok = true;
  for (const root of roots) {
    const tty = !quiet && process.stderr.isTTY;
    const r = checkIndex(dir, root, tty ? progressBar(root) : undefined);
    if (tty) process.stderr.write('\n');
    if ('why' in r) {
      ok = false;
      process.stderr.write(`layerfs: ${root}: ${r.why} (build it with 'layerfs index build ${root}')\n`);
      continue;
    }
    const shown = limit === 0 ? r.differences : r.differences.slice(0, limit);
    for (const d of shown) process.stdout.write(`${d.kind.padEnd(8)} ${d.path}${d.kind === 'changed' ? `: ${d.fields.join(', ')}` : ''}\n`);
    if (shown.length < r.differences.length) process.stdout.write(`... and ${r.differences.length - shown.length} more (--limit 0 shows all)\n`);
    const growth = r.grew.length === 0 ? '' : `; ${r.grew.length} new name(s) in its root (e.g. '${r.grew[0]}'), indexed by the next mount`;
    if (r.differences.length === 0) {
      process.stdout.write(`${root}: the index matches the layer (${r.checked} entries, ${r.seconds.toFixed(1)} s)${growth}\n`);
    } else {
      ok = false;
      process.stdout.write(
        `${root}: ${r.differences.length} difference(s) in ${r.checked} entries: the index ${r.file} is stale; rebuild it with 'layerfs index build ${root}'${growth}\n`,
      );
    }
  }
  if (!ok) process.exitCode = EXIT_FAIL;
}

/** The arguments every `index` subcommand takes: lower layers, and where their indexes live. */
function indexArgs<T>(y: Argv<T>) {
  return y
    .positional('lowers', { type: 'string', array: true, demandOption: true, describe: 'lower layer directories' })
    .option('index-dir', { type: 'string', describe: `where indexes live (default ${defaultIndexDir()})` });
}

/** A command handler whose every error, thrown or rejected, ends in fail(): one line, the right exit status. */
function act<A>(fn: (a: A) => unknown): (a: A) => Promise<void> {
  return (a) =>
    Promise.resolve()
      .then(() => fn(a))
      .then(() => undefined, fail);
}

function filterOptions<T>(y: Argv<T>) {
  return y
    .option('op', { type: 'string', describe: 'operations, comma-separated (LOOKUP,OPEN,...)' })
    .option('path', { type: 'string', describe: "path glob ('*' matches across '/')" })
    .option('pid', { type: 'string', describe: 'caller process id' })
    .option('errno', { type: 'string', describe: 'result: OK, ENOENT, 13, ...' });
}

function filterOf(a: { op?: string; path?: string; pid?: string; errno?: string }): TraceFilter {
  const f: TraceFilter = {};
  if (a.op !== undefined) f.ops = a.op.split(',').filter((o) => o !== '');
  if (a.path !== undefined) f.path = a.path;
  if (a.pid !== undefined) {
    if (!/^\d+$/.test(a.pid)) throw new UsageError(`--pid needs a process id, not '${a.pid}'`);
    f.pid = Number(a.pid);
  }
  if (a.errno !== undefined) {
    const e = parseErrno(a.errno);
    if (e === undefined) throw new UsageError(`--errno: unknown errno '${a.errno}'`);
    f.errno = e;
  }
  return f;
}

/** fuse-overlayfs and mount helpers pass "-oOPTS"; yargs would read that as -o -O -P ... */
function splitAttachedO(argv: string[]): string[] {
  return argv.flatMap((a) => (a.startsWith('-o') && a.length > 2 && !a.startsWith('--') ? ['-o', a.slice(2)] : [a]));
}

export function main(argv: string[]): void {
  // Output piped into a reader that stops early (| head): end quietly, as
  // GNU tools do, instead of an EPIPE stack trace.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  yargs(splitAttachedO(argv))
    .scriptName('layerfs')
    .usage('layerfs: a userspace overlay filesystem on FUSE, compatible with kernel overlayfs layers')
    .command(
      'mount <first> [second]',
      'mount an overlay (returns once it is live; -f stays in front)',
      (y) => mountOptions(y),
      act((a) => runMount(a as unknown as MountArgs)),
    )
    .command(
      '$0 <first> [second]',
      'same as mount (the form fuse-overlayfs and mount.fuse3 use: layerfs [SOURCE] MOUNTPOINT -o OPTS)',
      (y) => mountOptions(y),
      act((a) => runMount(a as unknown as MountArgs)),
    )
    .command('index', 'manage lower-layer indexes (a mount with -o lowerindex=on reads lower layers from them)', (y) =>
      y
        .command(
          'build <lowers..>',
          'index lower layers for fast lookups',
          (b) => indexArgs(b).option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'no progress or summary' }),
          act((a) => runIndexBuild(a.lowers as string[], a['index-dir'] ?? defaultIndexDir(), a.quiet)),
        )
        .command(
          'check <lowers..>',
          'compare lower layers with their indexes, entry by entry (exit status 1 if one is stale or missing)',
          (b) =>
            indexArgs(b)
              .option('limit', { type: 'number', default: 20, describe: 'differences listed per layer (0: all)' })
              .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'no progress bar' }),
          act((a) => runIndexCheck(a.lowers as string[], a['index-dir'] ?? defaultIndexDir(), a.limit, a.quiet)),
        )
        .demandCommand(1, 'index: say what to do (layerfs index build|check LOWER...)'),
    )
    .command(
      'umount <mountpoint>',
      'unmount a layerfs mount; its daemon then exits',
      (y) =>
        y
          .positional('mountpoint', { type: 'string', demandOption: true })
          .option('lazy', { alias: 'l', type: 'boolean', default: false, describe: 'detach even if busy' }),
      act((a) => unmount(path.resolve(a.mountpoint), a.lazy)),
    )
    .command(
      'status <mountpoint>',
      'what a running mount is doing: layers, options, ops, errors, latencies, cache, copy-ups, tracing',
      (y) => y.positional('mountpoint', { type: 'string', demandOption: true }).option('json', { type: 'boolean', default: false }),
      act((a) => runStatus(a.mountpoint, a.json)),
    )
    .command(
      'invalidate <mountpoint> [path]',
      'drop cached state after changes made behind the mount (all of it, or PATH and below); usable as a Nix remount-hook',
      (y) =>
        y
          .positional('mountpoint', { type: 'string', demandOption: true })
          .positional('path', { type: 'string', describe: 'a path inside the mount, or relative to its root' })
          .option('json', { type: 'boolean', default: false }),
      act((a) => runInvalidate(a.mountpoint, a.path, a.json)),
    )
    .command('trace', 'record and read traces of every request', (y) =>
      y
        .command(
          'on <mountpoint>',
          'start recording into a trace file (SQLite, a ring bounded by trace_max_mb)',
          (b) => b.positional('mountpoint', { type: 'string', demandOption: true }).option('file', { type: 'string', describe: 'trace file (default: in the runtime directory)' }).option('json', { type: 'boolean', default: false }),
          act((a) => runTraceSwitch(true, a.mountpoint, a.file, a.json)),
        )
        .command(
          'off <mountpoint>',
          'stop recording',
          (b) => b.positional('mountpoint', { type: 'string', demandOption: true }).option('json', { type: 'boolean', default: false }),
          act((a) => runTraceSwitch(false, a.mountpoint, undefined, a.json)),
        )
        .command(
          'tail <mountpoint>',
          'stream requests live, like strace for the mount',
          (b) => filterOptions(b.positional('mountpoint', { type: 'string', demandOption: true })).option('json', { type: 'boolean', default: false }),
          act((a) => runTraceTail(a.mountpoint, filterOf(a), a.json)),
        )
        .command(
          'summary <file>',
          'ops by count and time, slowest calls, hottest paths, hits per layer, copy-ups by size, errors',
          (b) => b.positional('file', { type: 'string', demandOption: true }).option('top', { type: 'number', default: 10 }).option('json', { type: 'boolean', default: false }),
          act((a) => runTraceSummary(a.file, a.json, a.top)),
        )
        .command(
          'query <file>',
          'select records (newest LIMIT, printed oldest first); exits 3 when none match',
          (b) => filterOptions(b.positional('file', { type: 'string', demandOption: true })).option('limit', { type: 'number', default: 1000 }).option('json', { type: 'boolean', default: false }),
          act((a) => {
            if (runTraceQuery(a.file, filterOf(a), a.limit, a.json) === 0) process.exitCode = EXIT_ABSENT;
          }),
        )
        .demandCommand(1, 'trace: say what to do (on, off, tail, summary, query)'),
    )
    .command(
      'explain <path>',
      'why PATH resolves as it does: what each layer has there, which wins and why, what hides it (exit 3 when not visible)',
      (y) =>
        y
          .positional('path', { type: 'string', demandOption: true, describe: 'a path inside a mount, or (with --lower) a path from the overlay root' })
          .option('lower', { type: 'string', describe: 'offline: lower layers L1:L2 (leftmost on top), no mount needed' })
          .option('upper', { type: 'string', describe: 'offline: the upper layer' })
          .option('json', { type: 'boolean', default: false }),
      act(async (a) => {
        process.exitCode = await runExplain(a.path, { lower: a.lower, upper: a.upper }, a.json);
      }),
    )
    .strictOptions()
    .help()
    .alias('h', 'help')
    .version()
    .fail((msg, err) => {
      if (err) fail(err);
      die(`${msg} (see layerfs --help)`, EXIT_USAGE);
    })
    .parse();
}

if (require.main === module) main(process.argv.slice(2));
