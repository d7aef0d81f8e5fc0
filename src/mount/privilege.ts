// What the daemon may do to ownership, which decides how the upper layer
// keeps owners (core/override-stat.ts).
import { readFileSync } from 'fs';

/** Whether this process's user namespace is the initial one (uid_map is the identity over all ids). */
export function inInitialUserNamespace(): boolean {
  try {
    const lines = readFileSync('/proc/self/uid_map', 'utf8').trim().split('\n');
    return lines.length === 1 && /^\s*0\s+0\s+4294967295\s*$/.test(lines[0]);
  } catch {
    return true; // no /proc: nothing says otherwise
  }
}

/**
 * uid as the parent user namespace knows it (uid_map read from inside maps
 * our ids to the parent's): in `unshare -Ur`, root here is the user outside.
 */
export function parentUid(uid: number): number {
  try {
    for (const line of readFileSync('/proc/self/uid_map', 'utf8').trim().split('\n')) {
      const [inside, outside, count] = line.trim().split(/\s+/).map(Number);
      if (uid >= inside && uid - inside < count) return outside + (uid - inside);
    }
  } catch {
    // no /proc: as is
  }
  return uid;
}

/** Root in the initial user namespace: lchown to any id works, for real. */
export function canChownAnyone(): boolean {
  return process.geteuid?.() === 0 && inInitialUserNamespace();
}

/** The kernel's overflow ids: how ids that cannot be mapped are shown. */
export function overflowIds(): { uid: number; gid: number } {
  const read = (f: string): number => {
    try {
      const n = Number(readFileSync(f, 'utf8').trim());
      return Number.isSafeInteger(n) ? n : 65534;
    } catch {
      return 65534;
    }
  };
  return { uid: read('/proc/sys/kernel/overflowuid'), gid: read('/proc/sys/kernel/overflowgid') };
}
