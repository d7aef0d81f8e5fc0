// Owner ids as the layers hold them ("on disk") and as the mount shows them,
// in fuse-overlayfs's terms (its uidmapping=/gidmapping=/squash_to_* options):
//
//   - a mapping is a list of ON-DISK:SHOWN:COUNT triples; an on-disk id in
//     no range shows as the overflow id, and a shown id in no range (from a
//     chown or a creating caller) is stored as the overflow id;
//   - squash_to_uid=N / squash_to_gid=N / squash_to_root show every object
//     as owned by N (or 0), whatever is on disk; writes are not squashed.
//
// Mappings let one store be shared by user namespaces with different id maps
// without chowning it: the daemon runs outside them and the kernel maps the
// ids it reports into the namespace of the mount.
import type { Stat } from './stat';

export interface IdRange {
  /** First id on disk. */
  disk: number;
  /** First id shown. */
  shown: number;
  count: number;
}

export interface IdMapOptions {
  uids?: IdRange[];
  gids?: IdRange[];
  squashToRoot?: boolean;
  squashToUid?: number;
  squashToGid?: number;
  /** Kernel overflow ids (/proc/sys/kernel/overflow{u,g}id); 65534 by default. */
  overflowUid?: number;
  overflowGid?: number;
}

function through(id: number, ranges: IdRange[], from: 'disk' | 'shown', to: 'disk' | 'shown', overflow: number): number {
  for (const r of ranges) {
    const off = id - r[from];
    if (off >= 0 && off < r.count) return r[to] + off;
  }
  return overflow;
}

export class IdMap {
  private readonly uids: IdRange[];
  private readonly gids: IdRange[];
  private readonly squashUid?: number;
  private readonly squashGid?: number;
  private readonly overflowUid: number;
  private readonly overflowGid: number;
  /** No mapping and no squashing: ids pass through unchanged. */
  readonly identity: boolean;

  constructor(o: IdMapOptions = {}) {
    this.uids = o.uids ?? [];
    this.gids = o.gids ?? [];
    this.squashUid = o.squashToUid ?? (o.squashToRoot ? 0 : undefined);
    this.squashGid = o.squashToGid ?? (o.squashToRoot ? 0 : undefined);
    this.overflowUid = o.overflowUid ?? 65534;
    this.overflowGid = o.overflowGid ?? 65534;
    this.identity = this.uids.length === 0 && this.gids.length === 0 && this.squashUid === undefined && this.squashGid === undefined;
  }

  shownUid(uid: number): number {
    if (this.squashUid !== undefined) return this.squashUid;
    return this.uids.length === 0 ? uid : through(uid, this.uids, 'disk', 'shown', this.overflowUid);
  }

  shownGid(gid: number): number {
    if (this.squashGid !== undefined) return this.squashGid;
    return this.gids.length === 0 ? gid : through(gid, this.gids, 'disk', 'shown', this.overflowGid);
  }

  diskUid(uid: number): number {
    return this.uids.length === 0 ? uid : through(uid, this.uids, 'shown', 'disk', this.overflowUid);
  }

  diskGid(gid: number): number {
    return this.gids.length === 0 ? gid : through(gid, this.gids, 'shown', 'disk', this.overflowGid);
  }

  /** st with its owner as shown. */
  shown(st: Stat): Stat {
    if (this.identity) return st;
    return { ...st, uid: this.shownUid(st.uid), gid: this.shownGid(st.gid) };
  }

  describe(): string {
    if (this.identity) return 'ids shown as on disk';
    const r = (l: IdRange[]) => l.map((x) => `${x.disk}:${x.shown}:${x.count}`).join(',');
    const parts: string[] = [];
    if (this.squashUid !== undefined) parts.push(`every owner shown as uid ${this.squashUid}`);
    else if (this.uids.length) parts.push(`uids disk:shown:count ${r(this.uids)}`);
    if (this.squashGid !== undefined) parts.push(`every group shown as gid ${this.squashGid}`);
    else if (this.gids.length) parts.push(`gids disk:shown:count ${r(this.gids)}`);
    return parts.join('; ');
  }
}
