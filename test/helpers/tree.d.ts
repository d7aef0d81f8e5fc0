export interface SnapshotOptions {
  ino?: boolean;
  mtime?: boolean;
  dirSize?: boolean;
  /** Leave uid and gid out (trees seen from different user namespaces). */
  noOwners?: boolean;
}

export interface Snapshot {
  tree: Record<string, string>;
  /** Names readdir listed but lookup did not find (kernel overlayfs lists
   *  whiteouts found in directories that merge with nothing below). */
  dangling: string[];
}

/** Whole-tree snapshot: path -> one line of what a user can observe. */
export function snapshot(root: string, o?: SnapshotOptions): Snapshot;
