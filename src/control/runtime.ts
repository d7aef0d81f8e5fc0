// Where a mount's control socket lives: a runtime directory readable by the
// mounting user only, one socket per mountpoint, named by a hash of the
// mountpoint's real path (so any client that can name the mountpoint finds
// it, and no path length limit of sun_path is ever hit).
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { inInitialUserNamespace, parentUid } from '../mount/privilege';
import { mkdirs } from '../mkdirs';

/**
 * The runtime directory: $LAYERFS_RUNTIME_DIR if set (tests), /run/layerfs for
 * root, $XDG_RUNTIME_DIR/layerfs for a user session, else /tmp/layerfs-UID.
 * Root in a user namespace is the user outside it: UID is that user's, and
 * /run/layerfs (real root's) is not used.
 */
export function runtimeDir(): string {
  const env = process.env.LAYERFS_RUNTIME_DIR;
  if (env !== undefined && env !== '') return env;
  const uid = process.geteuid?.() ?? 0;
  if (uid === 0 && inInitialUserNamespace()) return '/run/layerfs';
  const xdg = process.env.XDG_RUNTIME_DIR;
  if (xdg !== undefined && xdg !== '') return path.join(xdg, 'layerfs');
  return path.join(os.tmpdir(), `layerfs-${parentUid(uid)}`);
}

/**
 * Makes the runtime directory (mode 0700) if needed and checks that it is
 * ours and closed to others: a socket in a directory others can write to
 * could be replaced by theirs.
 */
export function ensureRuntimeDir(): string {
  const dir = runtimeDir();
  mkdirs(dir, 0o700);
  const st = fs.lstatSync(dir);
  const uid = process.geteuid?.() ?? 0;
  if (!st.isDirectory()) throw new Error(`runtime directory ${dir} is not a directory`);
  if (st.uid !== uid) throw new Error(`runtime directory ${dir} belongs to uid ${st.uid}, not to us (${uid})`);
  if ((st.mode & 0o077) !== 0) fs.chmodSync(dir, 0o700);
  return dir;
}

/** The control socket of the mount at mountpoint (an absolute, real path). */
export function socketPath(mountpoint: string): string {
  const h = createHash('sha256').update(mountpoint).digest('hex').slice(0, 16);
  return path.join(runtimeDir(), `${h}.sock`);
}

/** The default trace file of the mount at mountpoint. */
export function defaultTraceFile(mountpoint: string): string {
  const h = createHash('sha256').update(mountpoint).digest('hex').slice(0, 16);
  return path.join(runtimeDir(), `${h}.trace.sqlite`);
}
