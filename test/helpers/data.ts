// File contents for tests that check data byte for byte.
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';

/** sha256 of a file's bytes, hex. */
export function sha256Of(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/**
 * Writes count files dir/<prefix><i> of 3 MiB and a few more bytes each
 * (larger than one 1 MiB FUSE request, sizes not page multiples), every one
 * with its own bytes. Returns their sha256s (hex), in order.
 */
export function writeDistinctFiles(dir: string, prefix: string, count: number): string[] {
  const sums: string[] = [];
  for (let f = 0; f < count; f++) {
    const data = Buffer.alloc((3 << 20) + f * 4099);
    for (let i = 0; i + 4 <= data.length; i += 4) data.writeUInt32LE(((i + f * 7919) * 2654435761) >>> 0, i);
    const file = path.join(dir, `${prefix}${f}`);
    fs.writeFileSync(file, data);
    sums.push(sha256Of(file));
  }
  return sums;
}
