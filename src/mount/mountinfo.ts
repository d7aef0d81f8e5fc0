// Reading /proc/self/mountinfo: which mounts exist, by id and mount point.
import * as fs from 'fs';

export interface MountEntry {
  id: number;
  /** The filesystem's device, "major:minor" (a FUSE mount's backing device is named so in sysfs). */
  dev: string;
  mountpoint: string;
  fstype: string;
  source: string;
  options: string;
}

/** Undoes the octal escapes (\040 for space, ...) of mountinfo fields. */
function unoctal(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function readMountinfo(): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    if (line === '') continue;
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (sep < 0) continue;
    out.push({
      id: Number(f[0]),
      dev: f[2],
      mountpoint: unoctal(f[4]),
      options: f[5],
      fstype: f[sep + 1],
      source: unoctal(f[sep + 2] ?? ''),
    });
  }
  return out;
}

/** The topmost mount at mountpoint, if any. */
export function mountAt(mountpoint: string): MountEntry | undefined {
  const all = readMountinfo().filter((m) => m.mountpoint === mountpoint);
  return all[all.length - 1];
}

export function isFuseType(fstype: string): boolean {
  return fstype === 'fuse' || fstype.startsWith('fuse.');
}
