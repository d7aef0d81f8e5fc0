// Unmounting a FUSE mount: as root with umount2(2) directly; otherwise through
// fusermount3/fusermount, the setuid helpers of fuse3/fuse.
import { spawnSync } from 'child_process';
import { native } from '../native';
import { fusermountHelper } from './fusermount';

export class UnmountError extends Error {
  constructor(message: string, readonly code?: string) {
    super(message);
  }
}

/** Unmounts mountpoint; lazy detaches it even while files are open. */
export function unmount(mountpoint: string, lazy: boolean): void {
  if (process.geteuid?.() === 0) {
    try {
      native().umount2(mountpoint, (lazy ? native().MNT_DETACH : 0) | native().UMOUNT_NOFOLLOW);
      return;
    } catch (err) {
      const code = (err as { code?: string }).code;
      const why =
        code === 'EINVAL' ? 'not mounted' : code === 'EBUSY' ? 'target is busy (use --lazy to detach it anyway)' : (err as Error).message;
      throw new UnmountError(`cannot unmount '${mountpoint}': ${why}`, code);
    }
  }
  const h = fusermountHelper();
  if (h === undefined) throw new UnmountError(`cannot unmount '${mountpoint}': not root and no fusermount3 found`);
  const r = spawnSync(h, lazy ? ['-uz', mountpoint] : ['-u', mountpoint], { encoding: 'utf8' });
  if (r.status !== 0) {
    throw new UnmountError(`cannot unmount '${mountpoint}': ${(r.stderr || r.error?.message || 'failed').trim().split('\n').pop()}`);
  }
}
