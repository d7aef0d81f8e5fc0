// One traced FUSE request, as stored (store.ts), streamed (trace tail) and
// queried. Field names are the SQLite column names.
import { constants } from 'os';

export interface TraceRecord {
  /** Wall-clock start, milliseconds since the epoch (fractional). */
  ts: number;
  op: string;
  /** The merged path the request is about ('' when the node is unknown). */
  path: string;
  /** The second path: rename's and link's destination, symlink's target. */
  path2?: string;
  /** open/create flags, setattr valid mask, rename flags, xattr flags. */
  flags?: number;
  /** 0, or the positive errno answered. */
  errno: number;
  durUs: number;
  pid: number;
  uid: number;
  gid: number;
  /** /proc/PID/comm of the caller, read when its pid is first seen. */
  comm: string;
  /** The layer that served it (its name), when one did. */
  layer?: string;
  /** What decided the answer: merge, whiteout, opaque directory, absence. */
  decision?: string;
  /** Whether the daemon's metadata cache answered the lookup of path. */
  cache?: 'hit' | 'miss';
  /** A copy-up this request caused: bytes of data and microseconds. */
  copyupBytes?: number;
  copyupUs?: number;
  /** Markers written: "whiteout (chardev)", "opaque (trusted.overlay.opaque)". */
  marker?: string;
}

const errnoNames = new Map<number, string>(Object.entries(constants.errno).map(([k, v]) => [v, k]));

export function errnoName(n: number): string {
  return n === 0 ? 'OK' : (errnoNames.get(n) ?? `errno ${n}`);
}

/** An errno given by name (ENOENT) or number, as users type it in filters. */
export function parseErrno(s: string): number | undefined {
  if (/^\d+$/.test(s)) return Number(s);
  const v = (constants.errno as Record<string, number>)[s.toUpperCase()];
  if (s.toUpperCase() === 'OK') return 0;
  return v;
}
