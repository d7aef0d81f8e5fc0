// Serving a mount: build the layers and the overlay, mount through fuse-native,
// report readiness, and end cleanly on SIGTERM/SIGINT/SIGHUP, `layerfs umount`
// or a plain umount(8).
//
// Order matters:
//   1. the overlay is opened (every layer root read) before mounting, so a bad
//      layer fails with nothing mounted;
//   2. readiness is reported only when the kernel's INIT has been answered, so
//      the mount is live when `layerfs mount` returns;
//   3. the end of the mount is noticed by watching this namespace's mount table
//      (poll on /proc/self/mountinfo), since libfuse does not tell fuse-native.
import * as path from 'path';
import { Overlay } from '../core/overlay';
import { fuseClass, fuseOps } from '../fuse/adapter';
import { loadFuseNative } from '../fuse/libfuse';
import { HostLayer } from '../layers/host';
import { native } from '../native';
import { mountAt, readMountinfo } from './mountinfo';
import type { MountOptions } from './options';
import { unmount } from './unmount';
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

/** The option string handed to libfuse. */
export function libfuseOptions(o: MountOptions, isRoot: boolean): string[] {
  // nonempty: libfuse 2 refuses a non-empty mountpoint, the kernel does not.
  const opts = ['use_ino', 'nonempty', `subtype=${FUSE_SUBTYPE}`, `fsname=${(o.fsname ?? 'layerfs').replace(/[,\\\s]/g, '_')}`];
  if (o.allowOther ?? isRoot) opts.push('allow_other');
  if (o.defaultPermissions ?? isRoot) opts.push('default_permissions');
  // The write path is not implemented yet: every mount is read-only (see Overlay).
  opts.push('ro');
  // libfuse 2 defaults to nodev,nosuid; kernel overlayfs to dev,suid. Match the kernel as root.
  const flags = new Set(o.mountFlags);
  if (isRoot && !flags.has('nodev')) flags.add('dev');
  if (isRoot && !flags.has('nosuid')) flags.add('suid');
  return [...opts, ...flags];
}

export async function serve(spec: MountSpec, o: MountOptions, log: Logger): Promise<Served> {
  const isRoot = process.geteuid?.() === 0;
  const layers: HostLayer[] = [];
  const names: string[] = [];
  if (spec.upperdir !== undefined) {
    layers.push(new HostLayer(spec.upperdir));
    names.push('upper');
  }
  spec.lowerdirs.forEach((l, i) => {
    layers.push(new HostLayer(l));
    names.push(`lower${i + 1}`);
  });
  const ov = await Overlay.open({ layers, layerNames: names, hasUpper: spec.upperdir !== undefined });
  if (spec.upperdir !== undefined) {
    log.info('the write path (copy-up, whiteouts) is not implemented yet: serving this mount read-only');
  }
  for (const ig of o.ignored) log.info(`option '${ig}' accepted; it has no effect on a layerfs mount`);
  names.forEach((n, i) => log.info(`${n}: ${layers[i].root}`));
  log.info(`inode numbers: ${ov.samefs ? 'all layers on one filesystem, real st_ino passed through' : 'layers on several filesystems, st_ino = layer-filesystem index << 48 | real st_ino'}`);

  const Fuse = loadFuseNative();
  const onUnexpected = (op: string, p: string, err: unknown) =>
    log.error(`internal error in ${op} '${p}': ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  const fuseOpts = libfuseOptions(o, isRoot);
  log.info(`libfuse options: ${fuseOpts.join(',')}`);
  const Cls = fuseClass(Fuse, ov, fuseOpts, onUnexpected);
  const fuse = new Cls(spec.mountpoint, fuseOps(ov, onUnexpected), { timeout: false });

  await new Promise<void>((resolve, reject) => {
    fuse.mount((err) => (err ? reject(new Error(`mounting on '${spec.mountpoint}' failed: ${err.message}`)) : resolve()));
  });
  const mine = mountAt(spec.mountpoint);
  if (mine === undefined) throw new Error(`mount on '${spec.mountpoint}' did not appear in /proc/self/mountinfo`);
  log.info(`mounted on ${spec.mountpoint} (mount id ${mine.id})`);

  let finish!: (status: number) => void;
  const ended = new Promise<number>((r) => (finish = r));
  let ending = false;
  const end = (status: number, why: string) => {
    if (ending) return;
    ending = true;
    stopWatching();
    log.info(`mount on ${spec.mountpoint} ended: ${why}`);
    ov.close().finally(() => finish(status));
  };
  const stopWatching = native().watchMountinfo(() => {
    if (!readMountinfo().some((m) => m.id === mine.id)) end(0, 'unmounted');
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
  return { ended };
}

/** Where `layerfs mount` finds the CLI entry to re-run as a daemon. */
export const cliEntry = path.join(__dirname, '..', 'cli', 'main.js');
