// Parsing of mount options, in the syntax of `mount -t overlay` and of
// fuse-overlayfs. Pure: no filesystem access (see validate.ts for the checks).
//
// Escaping follows the kernel (fs/overlayfs/params.c): in the option string a
// backslash escapes the next character, so "\," does not split options; in
// lowerdir "\:" does not split layers; each path is then unescaped by dropping
// the backslashes.

import { DEFAULT_LIMITS } from '../cache/metadata';
import type { IdMapOptions, IdRange } from '../core/idmap';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface MountOptions {
  /** Lower layers, top first (the leftmost lowerdir). */
  lowerdirs: string[];
  upperdir?: string;
  workdir?: string;
  /** `ro` was asked for. */
  ro: boolean;
  userxattr: boolean;
  /** Copied-up data is not fsynced (the kernel's `volatile`). */
  volatile: boolean;
  allowOther?: boolean;
  defaultPermissions?: boolean;
  fsname?: string;
  /** Mount flags handed to mount(2) (nodev, nosuid, noatime, ...). */
  mountFlags: string[];
  /** Accepted for compatibility, with no effect on a FUSE mount (reported in --verbose). */
  ignored: string[];
  /**
   * Caching. By default the layers change only through the mount (the
   * overlay contract; lower roots may still grow): the kernel caches names,
   * attributes, absences, data and listings, and the daemon caches lookups.
   * `nocache` turns all of it off, for lower layers that change underneath.
   */
  cache: CacheOptions;
  /**
   * Microseconds the daemon keeps polling /dev/fuse after it has answered
   * everything, before sleeping (spin=; 0 sleeps at once). See FuseSession.
   */
  spinUsec: number;
  /**
   * Read-ahead of the mount's kernel backing device in KiB (readahead_kb=;
   * 0 leaves the kernel's 128). Set through sysfs, so only when the daemon
   * is root in the initial namespace. See DESIGN, "Kernel caches".
   */
  readaheadKb: number;
  /** The kernel enforces and caches the layers' POSIX ACLs (on; `noacl` turns it off, as in fuse-overlayfs). */
  posixAcl: boolean;
  /**
   * FUSE passthrough for upper files (on; `nopassthrough` turns it off): the
   * kernel reads and writes them itself. See fuse/passthrough.ts.
   */
  passthrough: boolean;
  /**
   * Trace every request from the start (trace, trace=FILE, or `--trace[=FILE]`):
   * '' for the default file in the runtime directory.
   */
  trace?: string;
  /** Size bound of the trace ring (trace_max_mb=, default 64). */
  traceMaxBytes: number;
  /** Owners shown (uidmapping=, gidmapping=, squash_to_root, squash_to_uid=, squash_to_gid=). */
  ids: IdMapOptions;
  /**
   * fuse-overlayfs's xattr_permissions=: 1 keeps ownership overrides in
   * security.fuseoverlayfs.override_stat, 2 in user.containers.override_stat;
   * 0 (the default) decides by privilege (see core/override-stat.ts).
   */
  xattrPermissions: 0 | 1 | 2;
}

export const DEFAULT_TRACE_MAX_MB = 64;

/** Default spin=: long enough to catch the next request of find or ls -l on the bench machine. */
export const DEFAULT_SPIN_USEC = 200;
/**
 * Default readahead_kb=: one FUSE READ of max_pages (256 pages, 1 MiB) per
 * read-ahead window instead of eight of 128 KiB.
 */
export const DEFAULT_READAHEAD_KB = 1024;
/** Kernel inodes held at once before the least recently looked up are dropped. */
export const DEFAULT_MAX_NODES = 100_000;
/** cache_entries= bound: lru-cache sets aside ~8 bytes per entry up front (80 MB here). */
const MAX_CACHE_ENTRIES = 10_000_000;

export interface CacheOptions {
  enabled: boolean;
  /** Seconds the kernel may keep a name, attributes, and a name's absence. */
  entryTimeout: number;
  attrTimeout: number;
  negativeTimeout: number;
  /** Bounds of the daemon's metadata cache; either at 0 turns that cache off (the kernel's stay). */
  maxEntries: number;
  maxBytes: number;
  /** Most kernel inodes held at once; past it the least recently looked up are dropped (max_nodes=). */
  maxNodes: number;
  /** Serve lower layers from their persistent index (lowerindex=on). */
  lowerIndex: boolean;
  /** Where indexes live (index_dir=); undefined: the default. */
  indexDir?: string;
}

/** One day: the kernel keeps what it was told until then, or until told otherwise. */
export const DEFAULT_TIMEOUT = 86400;

/** Splits on sep where it is not escaped by a backslash; keeps the escapes. */
export function splitEscaped(s: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '\\' && i + 1 < s.length) {
      cur += c + s[i + 1];
      i++;
    } else if (c === sep) {
      out.push(cur);
      cur = '';
    } else {
      cur += c;
    }
  }
  out.push(cur);
  return out;
}

/** Drops escaping backslashes: "a\:b\\c" -> "a:b\c". */
export function unescape(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && i + 1 < s.length) i++;
    out += s[i];
  }
  return out;
}

/** Standard mount(8) flags that become mount(2) flags. */
const KERNEL_FLAGS = new Set(['dev', 'nodev', 'suid', 'nosuid', 'exec', 'noexec', 'async', 'sync', 'atime', 'noatime', 'dirsync']);

/** Standard mount(8) options with no meaning for a FUSE overlay, or defaults. */
const NO_EFFECT = new Set([
  'defaults', 'auto', 'noauto', 'user', 'nouser', 'users', 'nofail', '_netdev', 'owner', 'group',
  'relatime', 'norelatime', 'strictatime', 'nostrictatime', 'diratime', 'nodiratime', 'lazytime',
  'nolazytime', 'mand', 'nomand', 'silent', 'loud', 'iversion', 'noiversion',
  // kernel overlayfs and fuse-overlayfs options whose "off" form is what layerfs does
  'index=off', 'metacopy=off', 'nfs_export=off', 'redirect_dir=off', 'redirect_dir=nofollow',
  'xino=off', 'xino=auto', 'xino=on', 'uuid=off', 'uuid=null', 'uuid=auto', 'uuid=on',
  'verity=off', 'fsync=1', 'fsync', 'fsync=auto', 'fsync=strict', 'noacl', 'threaded=0', 'threaded=1',
  // libfuse's page-cache options: layerfs does auto_cache unless nocache is given
  'kernel_cache', 'auto_cache',
]);

/** Recognised options that layerfs does not implement: a clear error, not a silent ignore. */
const UNSUPPORTED: Record<string, string> = {
  'redirect_dir=on': 'renaming merged directories with redirects is not supported',
  'redirect_dir=follow': 'following redirects is not supported',
  'index=on': 'the inodes index is not supported',
  'metacopy=on': 'metadata-only copy-up is not supported',
  'nfs_export=on': 'NFS export is not supported',
  'verity=on': 'fs-verity checking is not supported',
  'verity=require': 'fs-verity checking is not supported',
};

const MAX_ID = 0xfffffffe; // (uid_t)-1 means "unchanged" to chown

/** Parses "D:S:N[:D:S:N...]" (empty fields from leading or doubled colons are skipped, as in fuse-overlayfs). */
export function parseIdMapping(key: string, value: string): IdRange[] {
  const parts = value.split(':').filter((p) => p !== '');
  const bad = (why: string) => new UsageError(`option '${key}=${value}': ${why} (expected ON-DISK:SHOWN:COUNT triples, e.g. 0:1000:1:1:100000:65536)`);
  if (parts.length === 0 || parts.length % 3 !== 0) throw bad('not a list of triples');
  const out: IdRange[] = [];
  for (let i = 0; i < parts.length; i += 3) {
    const [disk, shown, count] = parts.slice(i, i + 3).map((p) => (/^\d+$/.test(p) ? Number(p) : NaN));
    if (![disk, shown, count].every((n) => Number.isSafeInteger(n))) throw bad(`'${parts.slice(i, i + 3).join(':')}' is not three whole numbers`);
    if (count === 0) throw bad('a range of 0 ids');
    if (disk + count - 1 > MAX_ID || shown + count - 1 > MAX_ID) throw bad('a range past the largest id');
    out.push({ disk, shown, count });
  }
  return out;
}

export function parseMountOptions(optionStrings: string[], source?: string): MountOptions {
  const o: MountOptions = {
    lowerdirs: [],
    ro: false,
    userxattr: false,
    volatile: false,
    mountFlags: [],
    ignored: [],
    spinUsec: DEFAULT_SPIN_USEC,
    readaheadKb: DEFAULT_READAHEAD_KB,
    posixAcl: true,
    passthrough: true,
    traceMaxBytes: DEFAULT_TRACE_MAX_MB * 1024 * 1024,
    ids: {},
    xattrPermissions: 0,
    cache: {
      enabled: true,
      entryTimeout: DEFAULT_TIMEOUT,
      attrTimeout: DEFAULT_TIMEOUT,
      negativeTimeout: DEFAULT_TIMEOUT,
      maxEntries: DEFAULT_LIMITS.maxEntries,
      maxBytes: DEFAULT_LIMITS.maxBytes,
      maxNodes: DEFAULT_MAX_NODES,
      lowerIndex: false,
    },
  };
  const seconds = (key: string, v: string): number => {
    const n = Number(v);
    if (!/^\d+(\.\d+)?$/.test(v) || !Number.isFinite(n)) throw new UsageError(`option '${key}' needs a number of seconds, not '${v}'`);
    return n;
  };
  const count = (key: string, v: string): number => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(n)) throw new UsageError(`option '${key}' needs a whole number, not '${v}'`);
    return n;
  };
  let lowerGiven = false;
  for (const str of optionStrings) {
    for (const raw of splitEscaped(str, ',')) {
      if (raw === '') continue;
      const eq = raw.indexOf('=');
      const key = eq < 0 ? raw : raw.slice(0, eq);
      const value = eq < 0 ? undefined : raw.slice(eq + 1);
      const need = (): string => {
        if (value === undefined || value === '') throw new UsageError(`option '${key}' needs a value (${key}=...)`);
        return value;
      };
      switch (key) {
        case 'lowerdir': {
          const v = need();
          if (v.includes('::')) throw new UsageError('data-only lower layers (lowerdir=A::B) are not supported');
          o.lowerdirs = splitEscaped(v, ':').map((p) => {
            if (p === '') throw new UsageError(`empty path in lowerdir '${unescape(v)}'`);
            return unescape(p);
          });
          lowerGiven = true;
          break;
        }
        case 'upperdir':
          o.upperdir = unescape(need());
          break;
        case 'workdir':
          o.workdir = unescape(need());
          break;
        case 'ro':
          o.ro = true;
          break;
        case 'rw':
          o.ro = false;
          break;
        case 'userxattr':
          o.userxattr = true;
          break;
        case 'allow_other':
          o.allowOther = true;
          break;
        case 'no_allow_other':
          o.allowOther = false;
          break;
        case 'default_permissions':
          o.defaultPermissions = true;
          break;
        case 'no_default_permissions':
          o.defaultPermissions = false;
          break;
        case 'fsname':
          o.fsname = unescape(need());
          break;
        case 'volatile':
          o.volatile = true;
          break;
        case 'noacl':
          o.posixAcl = false;
          break;
        case 'nopassthrough':
          o.passthrough = false;
          break;
        case 'nocache':
          o.cache = { ...o.cache, enabled: false, entryTimeout: 0, attrTimeout: 0, negativeTimeout: 0 };
          break;
        case 'timeout': // fuse-overlayfs's name for all three
          o.cache.entryTimeout = o.cache.attrTimeout = o.cache.negativeTimeout = seconds(key, need());
          break;
        case 'entry_timeout':
          o.cache.entryTimeout = seconds(key, need());
          break;
        case 'attr_timeout':
          o.cache.attrTimeout = seconds(key, need());
          break;
        case 'negative_timeout':
          o.cache.negativeTimeout = seconds(key, need());
          break;
        case 'cache_entries':
          o.cache.maxEntries = count(key, need());
          // lru-cache preallocates its index arrays for this many entries.
          if (o.cache.maxEntries > MAX_CACHE_ENTRIES) {
            throw new UsageError(`option 'cache_entries' is at most ${MAX_CACHE_ENTRIES} (memory is set aside for each), not '${o.cache.maxEntries}'`);
          }
          break;
        case 'lowerindex': {
          const v = need();
          if (v !== 'on' && v !== 'off') throw new UsageError(`option 'lowerindex' is on or off, not '${v}'`);
          o.cache.lowerIndex = v === 'on';
          break;
        }
        case 'index_dir':
          o.cache.indexDir = unescape(need());
          break;
        case 'max_nodes':
          o.cache.maxNodes = count(key, need());
          if (o.cache.maxNodes < 10) throw new UsageError(`option 'max_nodes' must be at least 10, not '${o.cache.maxNodes}'`);
          break;
        case 'cache_mb':
          o.cache.maxBytes = count(key, need()) * 1024 * 1024;
          break;
        case 'trace':
          o.trace = value ?? '';
          break;
        case 'trace_max_mb': {
          const mb = count(key, need());
          if (mb < 1) throw new UsageError(`option 'trace_max_mb' must be at least 1, not '${mb}'`);
          o.traceMaxBytes = mb * 1024 * 1024;
          break;
        }
        case 'uidmapping':
          o.ids.uids = parseIdMapping(key, need());
          break;
        case 'gidmapping':
          o.ids.gids = parseIdMapping(key, need());
          break;
        case 'squash_to_root':
          if (value !== undefined) throw new UsageError(`option 'squash_to_root' takes no value`);
          o.ids.squashToRoot = true;
          break;
        case 'squash_to_uid':
        case 'squash_to_gid': {
          const id = count(key, need());
          if (id > 0xfffffffe) throw new UsageError(`option '${key}' needs an id up to 4294967294, not '${id}'`);
          if (key === 'squash_to_uid') o.ids.squashToUid = id;
          else o.ids.squashToGid = id;
          break;
        }
        case 'xattr_permissions': {
          const v = need();
          if (v !== '0' && v !== '1' && v !== '2') throw new UsageError(`option 'xattr_permissions' is 0, 1 or 2, not '${v}'`);
          o.xattrPermissions = Number(v) as 0 | 1 | 2;
          break;
        }
        case 'readahead_kb':
          o.readaheadKb = count(key, need());
          if (o.readaheadKb > 1_048_576) throw new UsageError(`option 'readahead_kb' is in KiB, at most 1048576, not '${o.readaheadKb}'`);
          break;
        case 'spin':
          o.spinUsec = count(key, need());
          if (o.spinUsec > 100_000) throw new UsageError(`option 'spin' is in microseconds, at most 100000, not '${o.spinUsec}'`);
          break;
        default:
          if (KERNEL_FLAGS.has(raw)) {
            o.mountFlags.push(raw);
          } else if (NO_EFFECT.has(raw) || key.startsWith('x-') || key === 'comment') {
            o.ignored.push(raw);
          } else if (raw in UNSUPPORTED) {
            throw new UsageError(`option '${raw}': ${UNSUPPORTED[raw]}`);
          } else {
            throw new UsageError(`unknown mount option '${raw}'`);
          }
      }
    }
  }
  if (!lowerGiven) throw new UsageError('no lowerdir given (use -o lowerdir=DIR[:DIR...])');
  if (o.upperdir !== undefined && o.workdir === undefined) throw new UsageError('upperdir given without workdir');
  if (o.workdir !== undefined && o.upperdir === undefined) throw new UsageError('workdir given without upperdir');
  if (o.fsname === undefined && source !== undefined && source !== '') o.fsname = source;
  return o;
}
