// The kernel's backing device of a FUSE mount (/sys/class/bdi/MAJOR:MINOR):
// its read-ahead window decides how large the READs of a sequential reader
// are. FUSE starts every mount at 128 KiB whatever max_pages the daemon
// negotiated, so a 1 GiB read arrives as 8192 READs of 128 KiB; a 1 MiB
// window makes them 1024 READs of 1 MiB (cold read of the bench's 1 GiB
// file: 1.25-1.73 s -> 0.93-0.97 s). Only root in the initial user
// namespace may write sysfs; anyone else keeps the kernel's window.
import { readFileSync, writeFileSync } from 'fs';

/**
 * Sets the read-ahead of the mount whose device is dev ("0:53") to kb KiB.
 * Returns what was done, for the log; never throws.
 */
export function setReadahead(dev: string, kb: number): string {
  const file = `/sys/class/bdi/${dev}/read_ahead_kb`;
  try {
    const was = readFileSync(file, 'utf8').trim();
    writeFileSync(file, String(kb));
    return `read-ahead ${was} -> ${kb} KiB (${file})`;
  } catch (err) {
    return `read-ahead left as the kernel set it: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} writing ${file}`;
  }
}
