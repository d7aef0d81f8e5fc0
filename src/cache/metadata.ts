// The metadata cache: for each merged path, what lookup decided (the
// Resolution: which layers hold it, their stats, the markers that stopped the
// walk; negative entries have no layers) and, for directories, the merged
// listing. Bounded by entries and bytes (lru-cache); it is never the source of
// correctness, only of speed: every mutation through the overlay tells it
// exactly what changed, and nothing expires by time.
//
// Two kinds of invalidation, matching the two kinds of change:
//   - A name changes (created, removed, renamed, copied up, its markers set):
//     drop(path). The node is marked dead; every node below it was resolved
//     through it and holds a reference to it, so it is dead too (checked on
//     each hit by walking up the parent references). No subtree scan.
//   - An upper object's attributes or contents change (write, chmod, a child
//     created in a directory): changed(stat). Upper objects carry a version
//     per (dev, ino) from one global sequence; a cached stat or listing read
//     before the object's last change is re-read (one lstat of the upper).
//     Keyed by inode, not path, so every hard-linked name of a file sees the
//     change. Lower objects never change while mounted (the overlay contract),
//     except for names appearing in a lower root (see Overlay.lowerGrew).
//
// Races: a resolution started before a mutation and finished after it must
// not be stored. Every drop/changed bumps `version`; set() stores only when
// the version it was given (read before the layers were read) is current.
import { LRUCache } from 'lru-cache';
import type { Resolution } from '../core/lookup';
import type { MergedPath } from '../core/paths';
import type { MergedDirEntry } from '../core/readdir';
import type { Stat } from '../core/stat';

export interface CacheLimits {
  /** Most cached paths (negative entries included). */
  maxEntries: number;
  /** Most bytes, estimated (paths, names, stats). */
  maxBytes: number;
}

export const DEFAULT_LIMITS: CacheLimits = { maxEntries: 50_000, maxBytes: 16 * 1024 * 1024 };

export interface CachedNode {
  readonly path: MergedPath;
  r: Resolution;
  /** The node this one was resolved through; undefined for the root. */
  readonly parent: CachedNode | undefined;
  dead: boolean;
  /** The sequence number read before the upper stat in r was read. */
  statSeq: number;
  /** The merged listing, for directories, and the sequence read before it. */
  listing?: MergedDirEntry[];
  listSeq: number;
  /** Estimated size in bytes, for the cache's byte bound. */
  size: number;
  /** The cache's get count when this node's recency was last refreshed as an ancestor. */
  tick: number;
}

// Live heap bytes, measured (V8, Node 20: heap after a full GC, walk of a
// 58 707-entry store, docs/DESIGN.md "Memory at scale"): a node with its
// resolution, the cache's own bookkeeping and one layer's stat (five bigints).
const STAT_BYTES = 330;
const NODE_BYTES = 480;
const LISTING_ENTRY_BYTES = 100;

/** See get(): at most this many gets between two refreshes of an ancestor's recency. */
const ANCESTOR_REFRESH = 32;

function estimate(n: CachedNode): number {
  let s = NODE_BYTES + n.path.length * 2 + n.r.entries.length * STAT_BYTES;
  if (n.listing !== undefined) for (const e of n.listing) s += LISTING_ENTRY_BYTES + e.name.length * 2;
  return s;
}

function inodeKey(st: Stat): string {
  return `${st.dev}:${st.ino}`;
}

export interface CacheStats {
  hits: number;
  misses: number;
  entries: number;
  bytes: number;
  drops: number;
  statRefreshes: number;
}

export class MetadataCache {
  private readonly nodes: LRUCache<string, CachedNode> | undefined;
  /** Upper inode -> sequence number of its last change. */
  private readonly inodeSeq: LRUCache<string, number>;
  /** Upper inodes written behind the overlay's back right now (beginWrites), with counts. */
  private readonly writers = new Map<string, number>();
  /** The newest change among forgotten inode records: older reads of them are suspect. */
  private forgottenSeq = 0;
  private seq = 0;
  /** Bumped by every invalidation; set() compares it. */
  version = 0;
  hits = 0;
  misses = 0;
  drops = 0;
  statRefreshes = 0;
  private ticks = 0;
  /** Gets between two recency refreshes of an ancestor (ANCESTOR_REFRESH, less for tiny caches). */
  private readonly refreshGap: number;

  /** limits undefined, or either bound 0: caching off (every lookup reads the layers). */
  constructor(limits: CacheLimits | undefined) {
    this.refreshGap = Math.max(1, Math.min(ANCESTOR_REFRESH, Math.floor((limits?.maxEntries ?? 0) / 64)));
    if (limits !== undefined && limits.maxEntries > 0 && limits.maxBytes > 0) {
      this.nodes = new LRUCache<string, CachedNode>({
        max: limits.maxEntries,
        maxSize: limits.maxBytes,
        sizeCalculation: (n) => n.size,
        // Evicted is as good as dropped for the nodes below it: they hold a
        // reference to this object, and a later drop() of the path would only
        // find its successor.
        dispose: (n, _k, reason) => {
          if (reason !== 'set') n.dead = true;
        },
      });
    }
    this.inodeSeq = new LRUCache<string, number>({
      max: Math.max(1024, limits?.maxEntries ?? 1024),
      dispose: (v) => {
        if (v > this.forgottenSeq) this.forgottenSeq = v;
      },
    });
  }

  get enabled(): boolean {
    return this.nodes !== undefined;
  }

  /** The current sequence number: read it before reading a layer. */
  get now(): number {
    return this.seq;
  }

  /** A live node for path, or undefined. Refreshes its ancestors' recency. */
  get(path: MergedPath): CachedNode | undefined {
    const n = this.nodes?.get(path);
    if (n === undefined) {
      this.misses++;
      return undefined;
    }
    // Ancestors must stay more recent than their descendants (an evicted
    // ancestor kills everything below it). Refreshing each one on every hit
    // below it was a sixth of the daemon's time listing a big directory; once
    // per ANCESTOR_REFRESH gets keeps an ancestor at most that many gets
    // behind its most recently used descendant, far from the LRU's end.
    const tick = ++this.ticks;
    for (let a: CachedNode | undefined = n; a !== undefined; a = a.parent) {
      if (a.dead) {
        this.misses++;
        return undefined;
      }
      if (a !== n && tick - a.tick >= this.refreshGap) {
        a.tick = tick;
        this.nodes!.get(a.path);
      }
    }
    this.hits++;
    return n;
  }

  /** A cached node without touching recency or counters (may be dead). */
  peek(path: MergedPath): CachedNode | undefined {
    return this.nodes?.peek(path);
  }

  /**
   * Makes a node for r, resolved through parent, with the version and sequence
   * number read before the layers were. Stored only if nothing changed since.
   */
  set(path: MergedPath, r: Resolution, parent: CachedNode | undefined, version: number, seq: number): CachedNode {
    const n: CachedNode = { path, r, parent, dead: false, statSeq: seq, listSeq: -1, size: 0, tick: this.ticks };
    if (this.nodes !== undefined && version === this.version && (parent === undefined || !parent.dead)) {
      n.size = estimate(n);
      this.nodes.set(path, n);
    } else {
      n.dead = true; // usable by the caller now, never found again
    }
    return n;
  }

  /** Whether the stat held for the node's winning layer is current. */
  statFresh(n: CachedNode): boolean {
    const top = n.r.entries[0];
    if (top === undefined || top.layer !== 0) return true;
    if (this.writers.size > 0 && this.writers.has(inodeKey(top.stat))) return false;
    return n.statSeq >= 0 && this.changedAt(top.stat) <= n.statSeq;
  }

  /**
   * An upper file is being written where the overlay does not see it (a
   * handle passed through to the kernel): its stat is never fresh until
   * endWrites, then changed once more.
   */
  beginWrites(st: Stat): void {
    const k = inodeKey(st);
    this.writers.set(k, (this.writers.get(k) ?? 0) + 1);
  }

  endWrites(st: Stat): void {
    const k = inodeKey(st);
    const n = (this.writers.get(k) ?? 1) - 1;
    if (n > 0) this.writers.set(k, n);
    else this.writers.delete(k);
    this.changed(st);
  }

  /** Whether the node's listing is current (its upper part unchanged since). */
  listingFresh(n: CachedNode): boolean {
    if (n.listing === undefined) return false;
    const up = n.r.entries[0];
    return up === undefined || up.layer !== 0 || this.changedAt(up.stat) <= n.listSeq;
  }

  setListing(n: CachedNode, listing: MergedDirEntry[], seq: number): void {
    if (n.dead || this.nodes === undefined) return;
    n.listing = listing;
    n.listSeq = seq;
    this.resize(n);
  }

  /** Replaces the node's resolution after its winner's stat was re-read. */
  refreshed(n: CachedNode, r: Resolution, seq: number): void {
    this.statRefreshes++;
    n.r = r;
    n.statSeq = seq;
  }

  private resize(n: CachedNode): void {
    if (n.dead || this.nodes === undefined) return;
    n.size = estimate(n);
    if (this.nodes.peek(n.path) === n) this.nodes.set(n.path, n);
  }

  private changedAt(st: Stat): number {
    return this.inodeSeq.get(inodeKey(st)) ?? this.forgottenSeq;
  }

  /** The name at path changed: its node and everything below it are gone. */
  drop(path: MergedPath): void {
    this.version++;
    this.seq++;
    const n = this.nodes?.peek(path);
    if (n === undefined) return;
    this.drops++;
    n.dead = true;
    this.nodes!.delete(path);
  }

  /**
   * The object of the live node n was copied up: n now holds r (the caller's
   * exact new resolution, see withUpperCopy) with a fresh stat, and the
   * nodes below it stay, since they resolve as before. Resolutions of its
   * path started earlier are not stored (version).
   */
  copiedUp(n: CachedNode, r: Resolution): void {
    this.version++;
    this.seq++;
    n.r = r;
    n.statSeq = this.seq;
    this.resize(n);
  }

  /** The upper object with this stat changed (attributes, contents or entries). */
  changed(st: Stat): void {
    this.version++;
    this.inodeSeq.set(inodeKey(st), ++this.seq);
  }

  /**
   * The node's own stat and listing are stale, its resolution is not (a
   * directory whose entries changed behind the overlay's back): both are
   * re-read on next use, the nodes below it stay.
   */
  touch(path: MergedPath): void {
    this.version++;
    this.seq++;
    const n = this.nodes?.peek(path);
    if (n === undefined) return;
    n.statSeq = -1;
    n.listing = undefined;
    n.listSeq = -1;
  }

  /** Everything is stale (an explicit invalidation of the whole mount). */
  clear(): void {
    this.version++;
    this.seq++;
    this.forgottenSeq = this.seq;
    if (this.nodes === undefined) return;
    for (const n of this.nodes.values()) n.dead = true;
    this.nodes.clear();
    this.inodeSeq.clear();
  }

  stats(): CacheStats {
    return {
      hits: this.hits,
      misses: this.misses,
      entries: this.nodes?.size ?? 0,
      bytes: this.nodes?.calculatedSize ?? 0,
      drops: this.drops,
      statRefreshes: this.statRefreshes,
    };
  }
}
