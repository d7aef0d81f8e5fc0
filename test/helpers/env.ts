// What this machine allows: mounting tests need root and a usable /dev/fuse;
// differential tests also need kernel overlayfs. Skips print their reason.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

export const ROOT = process.geteuid?.() === 0;

function fuseUsable(): string | undefined {
  if (!ROOT) return 'not running as root';
  try {
    fs.closeSync(fs.openSync('/dev/fuse', 'r+'));
  } catch (err) {
    return `/dev/fuse is not usable: ${(err as Error).message}`;
  }
  return undefined;
}

let kernelChecked: string | undefined | null = null;
function kernelOverlay(): string | undefined {
  if (kernelChecked !== null) return kernelChecked;
  const why = fuseUsable();
  if (why !== undefined) return (kernelChecked = why);
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'lfs-kprobe-'));
  fs.mkdirSync(`${d}/a`);
  fs.mkdirSync(`${d}/b`);
  fs.mkdirSync(`${d}/m`);
  try {
    execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${d}/a:${d}/b`, `${d}/m`], { stdio: 'pipe' });
    execFileSync('umount', [`${d}/m`]);
    kernelChecked = undefined;
  } catch (err) {
    kernelChecked = `kernel overlayfs cannot be mounted: ${(err as Error).message.split('\n')[0]}`;
  }
  fs.rmSync(d, { recursive: true, force: true });
  return kernelChecked;
}

/** describe() that is skipped, with the reason printed, when why is set. */
function describeUnless(why: string | undefined, name: string, fn: () => void): void {
  if (why !== undefined) {
    // eslint-disable-next-line no-console
    console.log(`SKIPPED "${name}": ${why}`);
    describe.skip(name, fn);
  } else describe(name, fn);
}

/** Runs only where mounting works. */
export function describeIfFuse(name: string, fn: () => void): void {
  describeUnless(fuseUsable(), name, fn);
}

/** Runs only where kernel overlayfs can be mounted too. */
export function describeIfKernelOverlay(name: string, fn: () => void): void {
  describeUnless(kernelOverlay(), name, fn);
}

export function tmpdir(prefix = 'lfs-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}
