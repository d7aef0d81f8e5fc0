// Mounting without root: fuse3's setuid helper fusermount3 opens /dev/fuse,
// mounts it on the user's behalf (checking that the user may: write access to
// the mountpoint, /etc/fuse.conf for allow_other, nosuid/nodev forced) and
// hands the open device back over a Unix socket (SCM_RIGHTS), named to it by
// the _FUSE_COMMFD environment variable. This is libfuse's own protocol; the
// helper exits once the fd is sent (no auto_unmount), and the mount ends the
// usual way: `fusermount3 -u`, or the daemon's own unmount on a signal.
import { spawnSync } from 'child_process';
import { closeSync, existsSync, readFileSync } from 'fs';
import { native } from '../native';

export const NO_FUSERMOUNT = 'mounting as a non-root user needs fusermount3 (Debian/Ubuntu package fuse3), and none was found';

/** fusermount3 (fuse3) or fusermount (fuse 2, same protocol), from the usual places. */
export function fusermountHelper(): string | undefined {
  for (const dir of ['/usr/bin', '/bin', '/usr/local/bin', '/usr/sbin', '/sbin']) {
    for (const name of ['fusermount3', 'fusermount']) {
      if (existsSync(`${dir}/${name}`)) return `${dir}/${name}`;
    }
  }
  return undefined;
}

/**
 * Whether /etc/fuse.conf lets non-root users mount with allow_other: a line
 * `user_allow_other` (comments after '#' ignored), as fusermount3 reads it.
 */
export function userAllowOther(conf = '/etc/fuse.conf'): boolean {
  let text: string;
  try {
    text = readFileSync(conf, 'utf8');
  } catch {
    return false;
  }
  return text.split('\n').some((l) => l.replace(/#.*/, '').trim() === 'user_allow_other');
}

/** Escapes a value for fusermount3's -o list, where ',' separates and '\' escapes. */
function escapeOpt(v: string): string {
  return v.replace(/[\\,]/g, (c) => `\\${c}`);
}

/** The -o list fusermount3 takes for these mount flags and FUSE options. */
export function fusermountOptions(flags: string[], fsname: string, subtype: string, allowOther: boolean, defaultPermissions: boolean): string {
  const o = [...flags, `fsname=${escapeOpt(fsname)}`, `subtype=${escapeOpt(subtype)}`];
  if (allowOther) o.push('allow_other');
  if (defaultPermissions) o.push('default_permissions');
  return o.join(',');
}

/**
 * Mounts through fusermount3 and returns the /dev/fuse fd (non-blocking).
 * Throws with fusermount3's own one-line complaint when it refuses.
 */
export function mountWithFusermount(mountpoint: string, options: string): number {
  const helper = fusermountHelper();
  if (helper === undefined) throw new Error(NO_FUSERMOUNT);
  const n = native();
  const [ours, theirs] = n.socketpair();
  let r;
  try {
    r = spawnSync(helper, ['-o', options, '--', mountpoint], {
      stdio: ['ignore', 'pipe', 'pipe', theirs],
      env: { ...process.env, _FUSE_COMMFD: '3' },
      encoding: 'utf8',
      timeout: 60_000,
    });
  } finally {
    closeSync(theirs);
  }
  if (r.error !== undefined || r.status !== 0) {
    closeSync(ours);
    const said = `${r.stderr ?? ''}`.trim().split('\n').filter(Boolean).pop();
    throw new Error(`${helper} refused to mount '${mountpoint}': ${said ?? r.error?.message ?? `exit status ${r.status ?? r.signal}`}`);
  }
  // The helper has exited: the fd, if it sent one, is waiting in the socket;
  // otherwise recvmsg sees EOF at once (we closed our copy of its end).
  let fd: number;
  try {
    fd = n.recvFd(ours);
  } finally {
    closeSync(ours);
  }
  if (fd < 0) throw new Error(`${helper} exited without handing over the FUSE device for '${mountpoint}'`);
  n.setNonblock(fd);
  return fd;
}
