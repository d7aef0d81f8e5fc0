// Ownership and modes a layer cannot hold for real, kept in an xattr instead:
// containers/storage's `user.containers.override_stat`, which fuse-overlayfs
// reads and writes too. A user without CAP_CHOWN (an ordinary user, or root
// in a user namespace with one mapped id) cannot make a file root-owned,
// cannot keep a set-gid bit for a group it is not in, and cannot make device
// nodes; a rootless container image needs all three.
//
// Format (containers/storage pkg/idtools): "UID:GID:MODE[:TYPE]", ids in
// decimal, MODE in octal (permission and set-id bits), TYPE one of file, dir,
// symlink, pipe, socket, block-MAJOR-MINOR, char-MAJOR-MINOR. Without TYPE
// the real type stands. Only regular files and directories carry it (user.*
// xattrs exist on nothing else), so a device or fifo is a regular file with
// a TYPE.
//
// A layer is read in this mode when its root directory carries one of the
// names (containers/storage marks layers so, and so does layerfs the first
// time it writes one into an upper); the upper of a mount whose daemon
// cannot chown at will is always in it.
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK, devMajor, devMinor, type Stat } from './stat';

/** What layerfs writes, and what fuse-overlayfs's xattr_permissions=2 writes. */
export const CONTAINERS_OVERRIDE = 'user.containers.override_stat';
/** fuse-overlayfs's other names: xattr_permissions=1 (root only) and its own user form. */
export const PRIVILEGED_OVERRIDE = 'security.fuseoverlayfs.override_stat';
export const USER_OVERRIDE = 'user.fuseoverlayfs.override_stat';
/** Detection order on a layer root, as fuse-overlayfs has it. */
export const OVERRIDE_NAMES = [PRIVILEGED_OVERRIDE, CONTAINERS_OVERRIDE, USER_OVERRIDE] as const;

export function isOverrideXattr(name: string): boolean {
  return (OVERRIDE_NAMES as readonly string[]).includes(name);
}

export interface Override {
  uid: number;
  gid: number;
  /** Type and permission bits. */
  mode: number;
  rdev: number;
}

const TYPES: Array<[string, number]> = [
  ['dir', S_IFDIR],
  ['file', S_IFREG],
  ['symlink', S_IFLNK],
  ['pipe', S_IFIFO],
  ['socket', S_IFSOCK],
  ['block', S_IFBLK],
  ['char', S_IFCHR],
];

/** Linux dev_t from major/minor (glibc's gnu_dev_makedev). */
export function makeDev(major: number, minor: number): number {
  const dev = ((BigInt(major) & 0xfffn) << 8n) | ((BigInt(major) & ~0xfffn) << 32n) | (BigInt(minor) & 0xffn) | ((BigInt(minor) & ~0xffn) << 12n);
  return Number(dev);
}

/**
 * Parses a value against the real object's attributes; undefined when it is
 * not in the format (such a value is ignored, as fuse-overlayfs does for
 * what it cannot parse).
 */
export function parseOverride(value: string, real: Stat): Override | undefined {
  const m = /^(\d+):(\d+):([0-7]+)(?::(.*))?$/.exec(value.replace(/\0+$/, ''));
  if (m === null) return undefined;
  const perm = parseInt(m[3], 8);
  if (perm > 0o7777) return undefined;
  let type = real.mode & S_IFMT;
  let rdev = real.rdev;
  if (m[4] !== undefined) {
    const t = /^([a-z]+)(?:-(\d+)-(\d+))?$/.exec(m[4]);
    const known = t && TYPES.find(([n]) => n === t[1]);
    if (!t || !known) return undefined;
    type = known[1];
    if (type === S_IFBLK || type === S_IFCHR) rdev = t[2] === undefined ? 0 : makeDev(Number(t[2]), Number(t[3]));
  }
  // A directory stays a directory and a regular file cannot become one: the
  // overlay walks directories and reads files by what they really are.
  const realType = real.mode & S_IFMT;
  if ((realType === S_IFDIR) !== (type === S_IFDIR) || type === S_IFLNK) type = realType;
  return { uid: Number(m[1]), gid: Number(m[2]), mode: type | perm, rdev };
}

export function formatOverride(o: Override): string {
  const type = o.mode & S_IFMT;
  const name = TYPES.find(([, t]) => t === type)?.[0] ?? 'file';
  const dev = type === S_IFBLK || type === S_IFCHR ? `-${devMajor(o.rdev)}-${devMinor(o.rdev)}` : '';
  return `${o.uid}:${o.gid}:${(o.mode & 0o7777).toString(8).padStart(4, '0')}:${name}${dev}`;
}

/** The attributes shown for an object whose xattr says o. */
export function applyOverride(real: Stat, o: Override): Stat {
  return { ...real, uid: o.uid, gid: o.gid, mode: o.mode, rdev: o.rdev };
}

/**
 * The mode the real object keeps under an override: what its owner (the
 * daemon) needs to work on it, and no set-id bits (they live in the xattr).
 */
export function realModeUnder(o: Override): number {
  return (o.mode & 0o777) | ((o.mode & S_IFMT) === S_IFDIR ? 0o700 : 0o600);
}
