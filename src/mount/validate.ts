// Checks on the layers and the mountpoint before anything is mounted. Every
// failure is a UsageError with one line a person can act on; nothing is
// mounted and nothing outside the workdir is touched.
import * as fs from 'fs';
import * as path from 'path';
import { type MountOptions, UsageError } from './options';
import { INCOMPAT_DIR } from '../core/layer';

export interface MountSpec {
  mountpoint: string;
  lowerdirs: string[];
  upperdir?: string;
  workdir?: string;
}

function describe(err: unknown): string {
  const code = (err as { code?: string }).code;
  switch (code) {
    case 'ENOENT': return 'does not exist';
    case 'ENOTDIR': return 'is not a directory';
    case 'EACCES': return 'is not accessible (permission denied)';
    case 'ENOTCONN': return 'is a dead FUSE mount (transport endpoint is not connected); unmount it first';
    case 'ELOOP': return 'has too many levels of symbolic links';
    default: return `cannot be used: ${(err as Error).message}`;
  }
}

/** stat()s a directory argument and returns its real path (UsageError naming role if unusable). */
export function realDir(role: string, p: string): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch (err) {
    throw new UsageError(`${role} '${p}' ${describe(err)}`);
  }
  if (!st.isDirectory()) throw new UsageError(`${role} '${p}' is not a directory`);
  try {
    return fs.realpathSync(p);
  } catch (err) {
    throw new UsageError(`${role} '${p}' ${describe(err)}`);
  }
}

/** a is b, or lies below b. */
function within(a: string, b: string): boolean {
  return a === b || b === '/' || a.startsWith(b + '/');
}

function probeWorkdir(workdir: string): void {
  // Like the kernel, layerfs keeps its scratch space in workdir/work.
  const work = path.join(workdir, 'work');
  const probe = path.join(work, `.layerfs-probe-${process.pid}`);
  try {
    try {
      fs.mkdirSync(work, { mode: 0o700 });
    } catch (err) {
      if ((err as { code?: string }).code !== 'EEXIST') throw err;
    }
    const st = fs.statSync(work);
    if (!st.isDirectory()) throw Object.assign(new Error('work is not a directory'), { code: 'ENOTDIR' });
    // Kernel overlayfs leaves workdir/work at mode 000 (only root, which
    // bypasses modes, uses it); a user taking over such layers owns it.
    if (st.uid === process.geteuid?.() && (st.mode & 0o700) !== 0o700) fs.chmodSync(work, 0o700);
    fs.writeFileSync(probe, '');
    fs.unlinkSync(probe);
  } catch (err) {
    const e = err as { code?: string; message: string };
    throw new UsageError(`workdir '${workdir}' is not usable: ${e.code ?? ''}${e.code ? ' ' : ''}${e.message.replace(/^\w+: /, '')}`);
  }
  refuseIncompat(workdir, path.join(work, INCOMPAT_DIR));
}

/**
 * As kernel overlayfs does: a feature named in work/incompat (INCOMPAT_DIR)
 * refuses the mount. Nothing else in the work directory is looked at.
 */
function refuseIncompat(workdir: string, dir: string): void {
  let features: string[];
  try {
    features = fs.readdirSync(dir);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return;
    throw new UsageError(`workdir '${workdir}' is not usable: ${dir}: ${code ?? (err as Error).message}`);
  }
  if (features.length === 0) return;
  const f = features.sort()[0];
  const why =
    f === 'volatile'
      ? 'a volatile mount used these layers, and after a crash the upper may not be intact'
      : 'these layers were used with a feature layerfs does not know, and it cannot tell whether the upper is intact';
  throw new UsageError(
    `workdir '${workdir}' is marked with incompatible feature '${f}' (${dir}/${f}): ${why}; remove that directory if it is (kernel overlayfs refuses the same)`,
  );
}

export function validateMount(mountpoint: string, o: MountOptions): MountSpec {
  const mnt = realDir('mountpoint', mountpoint);
  const lowers = o.lowerdirs.map((l) => realDir('lowerdir', l));
  const upper = o.upperdir === undefined ? undefined : realDir('upperdir', o.upperdir);
  const work = o.workdir === undefined ? undefined : realDir('workdir', o.workdir);

  const named: [string, string][] = [
    ...lowers.map((l, i): [string, string] => [`lowerdir '${o.lowerdirs[i]}'`, l]),
    ...(upper !== undefined ? [[`upperdir '${o.upperdir}'`, upper] as [string, string]] : []),
    ...(work !== undefined ? [[`workdir '${o.workdir}'`, work] as [string, string]] : []),
  ];
  for (const [role, p] of named) {
    if (p === mnt) throw new UsageError(`${role} is the mountpoint itself`);
    if (within(p, mnt)) throw new UsageError(`${role} is inside the mountpoint '${mountpoint}'`);
    if (within(mnt, p)) throw new UsageError(`mountpoint '${mountpoint}' is inside ${role}`);
  }
  if (upper !== undefined && work !== undefined) {
    for (let i = 0; i < lowers.length; i++) {
      for (const [role, p] of [[`upperdir '${o.upperdir}'`, upper], [`workdir '${o.workdir}'`, work]] as const) {
        if (within(p, lowers[i]) || within(lowers[i], p)) {
          throw new UsageError(`${role} and lowerdir '${o.lowerdirs[i]}' overlap`);
        }
      }
    }
    if (within(work, upper) || within(upper, work)) {
      throw new UsageError(`workdir '${o.workdir}' and upperdir '${o.upperdir}' overlap; they must be separate directories`);
    }
    if (fs.statSync(upper).dev !== fs.statSync(work).dev) {
      throw new UsageError(`upperdir '${o.upperdir}' and workdir '${o.workdir}' are on different filesystems`);
    }
    probeWorkdir(work);
  }
  return { mountpoint: mnt, lowerdirs: lowers, upperdir: upper, workdir: work };
}
