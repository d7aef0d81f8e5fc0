// Serving a mount: build the layers and the overlay, open /dev/fuse, mount(2)
// it, answer requests until the mount ends, and end cleanly on
// SIGTERM/SIGINT/SIGHUP, `layerfs umount` or a plain umount(8).
//
// Order matters:
//   1. the overlay is opened (every layer root read, the work directory
//      cleared and probed) before mounting, so a bad layer fails with nothing
//      mounted;
//   2. readiness is reported only when the kernel's INIT has been answered, so
//      the mount is live when `layerfs mount` returns;
//   3. the end of the mount is the end of the FUSE connection: read(2) on
//      /dev/fuse fails with ENODEV once the kernel drops it.
import { spawn } from 'child_process';
import { accessSync, closeSync, constants, openSync, readFileSync, renameSync, statfsSync, watch, writeFileSync, type FSWatcher } from 'fs';
import * as path from 'path';
import { setFlagsFromString } from 'v8';
import { runInNewContext } from 'vm';
import { Overlay } from '../core/overlay';
import type { LayerPath } from '../core/paths';
import { FuseSession } from '../fuse/session';
import { localFilesystem } from '../layers/fstype';
import { HostLayer, HostUpperLayer } from '../layers/host';
import { IndexedLayer } from '../layers/indexed';
import { defaultIndexDir, openIndex } from '../cache/lower-index';
import { native } from '../native';
import type { Layer } from '../core/layer';
import { mountAt, readMountinfo } from './mountinfo';
import type { MountOptions } from './options';
import { unmount } from './unmount';
import { Control } from './control';
import { canChownAnyone, overflowIds } from './privilege';
import { IdMap } from '../core/idmap';
import { CONTAINERS_OVERRIDE, PRIVILEGED_OVERRIDE } from '../core/override-stat';
import { setReadahead } from './bdi';
import { fusermountHelper, fusermountOptions, NO_FUSERMOUNT, mountWithFusermount, userAllowOther } from './fusermount';
import type { MountSpec } from './validate';

export interface Logger {
  info(msg: string): void;
  error(msg: string): void;
}

export interface Served {
  /** Resolves with the exit status once the mount has ended. */
  ended: Promise<number>;
}

export const FUSE_SUBTYPE = 'layerfs';

/**
 * How the FUSE connection is mounted. Root (also root in a user namespace,
 * which may mount FUSE in its own mount namespace) calls mount(2) itself;
 * anyone else goes through fusermount3, which forces nosuid,nodev.
 */
export function mountsDirectly(): boolean {
  return process.geteuid?.() === 0;
}

/** allow_other and default_permissions, with their defaults applied. */
export function fuseAccess(o: MountOptions): { allowOther: boolean; defaultPermissions: boolean } {
  // Like kernel overlayfs, the kernel checks every caller against the
  // attributes shown (default_permissions), for root and users alike; other
  // users are let in by default only when root mounts (as fuse-overlayfs does).
  return { allowOther: o.allowOther ?? mountsDirectly(), defaultPermissions: o.defaultPermissions ?? true };
}

/**
 * Refuses, before anything is opened or mounted, what fusermount3 would
 * refuse later with a less clear message.
 */
export function checkMountable(o: MountOptions): void {
  if (mountsDirectly()) return;
  if (fusermountHelper() === undefined) throw new Error(NO_FUSERMOUNT);
  try {
    accessSync('/dev/fuse', constants.R_OK | constants.W_OK);
  } catch {
    throw new Error('/dev/fuse is not readable and writable by this user (distributions ship it crw-rw-rw-; as root: chmod 0666 /dev/fuse)');
  }
  if (fuseAccess(o).allowOther && !userAllowOther()) {
    throw new Error("option 'allow_other' is refused to non-root users: /etc/fuse.conf has no 'user_allow_other' line (add it as root, or mount without allow_other)");
  }
  for (const f of ['suid', 'dev']) {
    if (o.mountFlags.includes(f)) throw new Error(`option '${f}' needs root: fusermount3 mounts every user's FUSE filesystem nosuid,nodev`);
  }
}

/** mount(2) flags and the FUSE mount data string for these options. */
export function fuseMountArgs(o: MountOptions, fd: number, readOnly: boolean): { flags: number; data: string } {
  const n = native();
  let flags = 0;
  // Kernel overlayfs defaults to dev,suid; so does a layerfs mount by root.
  for (const f of o.mountFlags) {
    if (f === 'nodev') flags |= n.MS_NODEV;
    else if (f === 'dev') flags &= ~n.MS_NODEV;
    else if (f === 'nosuid') flags |= n.MS_NOSUID;
    else if (f === 'suid') flags &= ~n.MS_NOSUID;
    else if (f === 'noexec') flags |= n.MS_NOEXEC;
    else if (f === 'exec') flags &= ~n.MS_NOEXEC;
    else if (f === 'sync') flags |= n.MS_SYNCHRONOUS;
    else if (f === 'async') flags &= ~n.MS_SYNCHRONOUS;
    else if (f === 'noatime') flags |= n.MS_NOATIME;
    else if (f === 'atime') flags &= ~n.MS_NOATIME;
    else if (f === 'dirsync') flags |= n.MS_DIRSYNC;
  }
  if (readOnly) flags |= n.MS_RDONLY;
  const data = [`fd=${fd}`, 'rootmode=40000', `user_id=${process.geteuid?.() ?? 0}`, `group_id=${process.getegid?.() ?? 0}`];
  const access = fuseAccess(o);
  if (access.allowOther) data.push('allow_other');
  if (access.defaultPermissions) data.push('default_permissions');
  return { flags, data: data.join(',') };
}

/** Opens /dev/fuse and mounts it, by mount(2) or through fusermount3; returns the fd. */
function mountFuse(o: MountOptions, mountpoint: string, source: string, readOnly: boolean, log: Logger): number {
  if (!mountsDirectly()) {
    const access = fuseAccess(o);
    const options = fusermountOptions([...o.mountFlags, ...(readOnly ? ['ro'] : [])], source, FUSE_SUBTYPE, access.allowOther, access.defaultPermissions);
    log.info(`mounting through ${fusermountHelper()} -o ${options}`);
    return mountWithFusermount(mountpoint, options);
  }
  // Non-blocking: the session reads on the main thread when poll says readable.
  let fd: number;
  try {
    fd = openSync('/dev/fuse', constants.O_RDWR | constants.O_NONBLOCK);
  } catch (err) {
    throw new Error(`cannot open /dev/fuse: ${(err as Error).message}`);
  }
  const { flags, data } = fuseMountArgs(o, fd, readOnly);
  log.info(`mount(2): type fuse.${FUSE_SUBTYPE}, data ${data}, flags 0x${flags.toString(16)}`);
  try {
    native().mount(source, mountpoint, `fuse.${FUSE_SUBTYPE}`, flags, data);
  } catch (err) {
    closeSync(fd);
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EPERM') {
      throw new Error(`mounting on '${mountpoint}' was refused (EPERM): root in a user namespace can mount only in a mount namespace of its own (unshare -Urm)`);
    }
    throw new Error(`mounting on '${mountpoint}' failed: ${e.message}`);
  }
  return fd;
}

/**
 * V8 lets the heap grow to up to four times what survived the last full
 * collection before collecting again; the daemon's live memory is a few
 * bounded tables, so that slack would be most of its RSS. 1.25x instead (the
 * flag is read at every collection, so setting it here takes effect).
 */
const HEAP_GROWING_PERCENT = 25;

/**
 * One full collection once start-up is over, before the first workload.
 * With --optimize-for-size (DAEMON_NODE_FLAGS), a full collection V8 has to
 * make at once because an allocation failed (instead of finishing its
 * incremental marking from a task) leaves the heap in its reduce-memory
 * mode until the next full collection: every scavenge then gives the young
 * generation's pages back to the kernel (madvise DONTNEED) and faults them
 * in again, ~100 page faults per scavenge at ~30 us each on the bench VM.
 * Start-up is one synchronous burst of allocation, so the first full
 * collection (~200 ms in) went that way in about half the daemons, and those
 * ran the next ~800 copy-ups or ~2 s of requests half again as slow (the
 * "slow fresh daemons" of docs/DESIGN.md). A collection requested here has
 * no reduce flag and ends that mode; it takes ~10 ms.
 */
function collectAfterStartup(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/** optionsText: the options as given, for `layerfs status`. */
export async function serve(spec: MountSpec, o: MountOptions, log: Logger, optionsText = ''): Promise<Served> {
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  checkMountable(o);
  const layers: Layer[] = [];
  const names: string[] = [];
  let upper: HostUpperLayer | undefined;
  const chownAnyone = canChownAnyone();
  if (spec.upperdir !== undefined && !o.ro) {
    upper = new HostUpperLayer(spec.upperdir, path.join(spec.workdir!, 'work'));
    layers.push(upper);
    names.push('upper');
    // Where owners are kept that lchown cannot set: the name the layer is
    // already marked with, the one xattr_permissions= names, or (for a
    // daemon that cannot chown at will) containers/storage's.
    const mark = upper.overrideMark();
    const name =
      mark ?? (o.xattrPermissions === 1 ? PRIVILEGED_OVERRIDE : o.xattrPermissions === 2 || !chownAnyone ? CONTAINERS_OVERRIDE : undefined);
    if (name !== undefined) {
      upper.useOverride(name);
      log.info(
        `upper: owners, set-id bits and device nodes the daemon cannot set for real are kept in ${name} (${
          mark !== undefined ? 'the layer root carries it' : o.xattrPermissions !== 0 ? `xattr_permissions=${o.xattrPermissions}` : 'the daemon cannot chown to other users'
        })`,
      );
    } else {
      log.info('upper: owners and modes set for real (root in the initial user namespace)');
    }
  }
  const c = o.cache;
  const indexed: Array<IndexedLayer | undefined> = [];
  const hosts: HostLayer[] = [];
  const mountpoints = readMountinfo().map((m) => m.mountpoint);
  spec.lowerdirs.forEach((l, i) => {
    // Synchronous metadata calls only where the layer cannot stall (fstype.ts).
    // Other filesystems mounted inside the layer are crossed (as fuse-overlayfs
    // does) and may stall: calls there stay asynchronous.
    const fsName = localFilesystem(statfsSync(l).type);
    const inside = mountpoints
      .filter((m) => m.startsWith(`${l}/`))
      .map((m) => m.slice(l.length + 1) as LayerPath);
    const host = new HostLayer(l, fsName !== undefined, inside);
    const mark = host.overrideMark();
    if (mark !== undefined) {
      host.useOverride(mark);
      log.info(`lower${i + 1}: its root carries ${mark}: owners and modes are read from that xattr where present (not indexed)`);
    }
    log.info(
      `lower${i + 1}: ${fsName !== undefined ? `on ${fsName}: metadata calls made synchronously` : 'not on a known local filesystem: every call asynchronous, so a stall delays only its own requests'}` +
        (inside.length ? `; ${inside.length} mount(s) inside it served asynchronously: ${inside.join(', ')}` : ''),
    );
    hosts.push(host);
    names.push(`lower${i + 1}`);
    if (!c.enabled || !c.lowerIndex || mark !== undefined) {
      layers.push(host);
      indexed.push(undefined);
      return;
    }
    const dir = c.indexDir ?? defaultIndexDir();
    const r = openIndex(dir, l);
    if (r.index !== undefined) {
      log.info(
        `lower${i + 1}: served from its index (${r.index.entries} entries)${r.grew.length ? `; ${r.grew.length} new name(s) in its root indexed` : ''}` +
          (r.unindexed.length ? `; ${r.unindexed.length} new name(s) in its root served from the layer (the index is in use by another mount)` : ''),
      );
      const layer = new IndexedLayer(host, r.index);
      for (const name of r.unindexed) layer.rootChanged(name);
      layers.push(layer);
      indexed.push(layer);
      return;
    }
    layers.push(host);
    indexed.push(undefined);
    log.info(`lower${i + 1}: no usable index (${r.why}); served from the layer, and an index is built in the background for the next mount`);
    // Built on first use, in a process of its own: nothing of it runs on
    // the thread that answers the kernel.
    const child = spawn(process.execPath, [cliEntry, 'index', 'build', '--quiet', '--index-dir', dir, l], { detached: true, stdio: 'ignore' });
    child.on('error', (err) => log.error(`index build for lower${i + 1}: ${err.message}`));
    child.unref();
  });
  const ov = await Overlay.open({
    layers,
    layerNames: names,
    upper,
    userxattr: o.userxattr,
    volatile: o.volatile,
    // New objects and copies get any owner: for real, or in the override xattr.
    privileged: chownAnyone || upper?.override !== undefined,
    cache: c.enabled ? { maxEntries: c.maxEntries, maxBytes: c.maxBytes } : false,
  });
  ov.onProblem = (what, err) => log.error(`${what}: ${err instanceof Error ? err.message : String(err)}`);
  for (const ig of o.ignored) log.info(`option '${ig}' accepted; it has no effect on a layerfs mount`);
  names.forEach((n, i) => log.info(`${n}: ${layers[i].root}`));
  if (upper !== undefined) log.info(`work directory: ${upper.workRoot}`);
  const mc = ov.markerConfig;
  if (mc !== undefined) {
    log.info(`marker probe in the work directory: ${mc.why.join('; ')}`);
    log.info(
      `whiteouts written as ${mc.whiteout === 'chardev' ? 'character devices 0/0' : `zero-size files with ${mc.xattrNs}.overlay.whiteout in ${mc.xattrNs}.overlay.opaque=x directories (mknod refused)`}; opaque directories as ${mc.xattrNs}.overlay.opaque=y`,
    );
  } else {
    log.info('read-only mount: no upper layer');
  }
  log.info(
    c.enabled
      ? `caching: kernel keeps names/attributes/absences for ${c.entryTimeout}/${c.attrTimeout}/${c.negativeTimeout} s, data and listings until changed (auto_cache); daemon cache ${c.maxEntries} entries / ${Math.round(c.maxBytes / 1048576)} MiB`
      : 'caching: off (nocache): every lookup reaches the layers',
  );
  log.info(`inode numbers: ${ov.samefs ? 'all layers on one filesystem, real st_ino passed through' : 'layers on several filesystems, st_ino = layer-filesystem index << 48 | real st_ino'}`);

  const overflow = overflowIds();
  const ids = new IdMap({ ...o.ids, overflowUid: overflow.uid, overflowGid: overflow.gid });
  if (!ids.identity) log.info(`owners: ${ids.describe()}`);
  const source = (o.fsname ?? 'layerfs').replace(/[\s]/g, '_');
  let fd: number;
  try {
    fd = mountFuse(o, spec.mountpoint, source, ov.readOnly, log);
  } catch (err) {
    await ov.close();
    throw err;
  }
  const session = new FuseSession(fd, ov, {
    entryTimeout: c.entryTimeout,
    attrTimeout: c.attrTimeout,
    negativeTimeout: c.negativeTimeout,
    kernelCache: c.enabled,
    maxNodes: c.maxNodes,
    spinUsec: o.spinUsec,
    posixAcl: o.posixAcl,
    passthrough: o.passthrough,
    log: (msg) => log.info(msg),
    ids,
    onUnexpected: (op, p, err) => log.error(`internal error in ${op} '${p}': ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`),
  });
  session.start();
  await Promise.race([session.initialized, session.ended.then((why) => Promise.reject(new Error(`mount ended before INIT: ${why}`)))]);
  const mine = mountAt(spec.mountpoint);
  log.info(`mounted on ${spec.mountpoint}${mine ? ` (mount id ${mine.id})` : ''}`);
  if (mine !== undefined && o.readaheadKb > 0) log.info(setReadahead(mine.dev, o.readaheadKb));

  const control = new Control({
    mountpoint: spec.mountpoint,
    ov,
    session,
    layers,
    names,
    layerInfo: names.map((n, i) => {
      const lower = i - (upper !== undefined ? 1 : 0); // -1: the upper
      return {
        name: n,
        root: layers[i].root,
        served: lower < 0 ? 'upper (writable)' : indexed[lower] !== undefined ? 'from its index' : 'from the layer',
        override: (lower < 0 ? upper : hosts[lower])?.override,
      };
    }),
    owners: ids.describe(),
    options: optionsText,
    log,
    startedAt: Date.now(),
    traceMaxBytes: o.traceMaxBytes,
  });
  await control.start();
  if (o.trace !== undefined) {
    try {
      control.traceOn(o.trace);
    } catch (err) {
      log.error(`${(err as Error).message}; the mount goes on untraced ('layerfs trace on' retries)`);
    }
  }

  let finish!: (status: number) => void;
  const ended = new Promise<number>((r) => (finish = r));
  let ending = false;
  const end = (status: number, why: string) => {
    if (ending) return;
    ending = true;
    log.info(`mount on ${spec.mountpoint} ended: ${why}`);
    for (const w of watchers) w.close();
    control.close();
    ov.close().finally(() => {
      try {
        closeSync(fd);
      } catch {
        // already closed
      }
      finish(status);
    });
  };
  void session.ended.then((why) => end(0, why));

  // Nix's contract for a lower store: it may only grow, by new names in its
  // root. One inotify watch per lower root turns each such name into an exact
  // invalidation (daemon cache, kernel dentry and listing); nothing is polled.
  const watchers: FSWatcher[] = [];
  if (c.enabled) {
    spec.lowerdirs.forEach((dir, i) => {
      try {
        const w = watch(dir, { persistent: false }, (_event, name) => {
          if (typeof name !== 'string' || name.length === 0 || name.includes('/')) return;
          indexed[i]?.rootChanged(name);
          ov.lowerGrew(name);
        });
        w.on('error', (err) => log.error(`watching lower${i + 1} ${dir}: ${err.message}; new names there show after 'kill -USR1'`));
        watchers.push(w);
      } catch (err) {
        log.error(`cannot watch lower${i + 1} ${dir}: ${(err as Error).message}; new names there show after 'kill -USR1'`);
      }
    });
  }
  // SIGUSR1: drop every cached state (after changes made behind the mount,
  // e.g. Nix deleting an upper path directly; usable as Nix's remount-hook).
  process.on('SIGUSR1', () => {
    ov.invalidate();
    log.info('all cached state invalidated (SIGUSR1)');
  });
  // SIGUSR2: write counters to $LAYERFS_STATS_FILE (benchmarks read them);
  // counted on the host layers, under any index, in layer order.
  const counted: HostLayer[] = [...(upper !== undefined ? [upper] : []), ...hosts];
  process.on('SIGUSR2', () => {
    const file = process.env.LAYERFS_STATS_FILE;
    if (file === undefined) return;
    // Under `node --expose-gc` (memory measurements), live objects only.
    (globalThis as { gc?: () => void }).gc?.();
    const status = readFileSync('/proc/self/status', 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0) * 1024;
    const stats = {
      requests: session.requests,
      byOp: session.byOp,
      passthrough: session.passthrough.opened,
      nodes: session.nodes.size,
      evictions: session.evictions,
      rss: kb('VmRSS'),
      peakRss: kb('VmHWM'),
      memory: process.memoryUsage(),
      cache: ov.cache.stats(),
      layers: counted.map((l, i) => ({ name: names[i], calls: l.calls.snapshot() })),
    };
    // Written aside and renamed, so a reader that sees the file sees all of it.
    try {
      const tmp = `${file}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify(stats));
      renameSync(tmp, file);
    } catch (err) {
      log.error(`writing stats to ${file}: ${(err as Error).message}`);
    }
  });
  const onSignal = (sig: NodeJS.Signals) => {
    try {
      // Detach even when busy: on a signal the daemon is going away regardless,
      // and a detached mount cannot be left dead in the namespace.
      unmount(spec.mountpoint, true);
    } catch (err) {
      log.error((err as Error).message);
    }
    end(0, `signal ${sig}`);
  };
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(sig, onSignal);
  collectAfterStartup();
  return { ended };
}

/** Where `layerfs mount` finds the CLI entry to re-run as a daemon. */
export const cliEntry = path.join(__dirname, '..', 'cli', 'main.js');
