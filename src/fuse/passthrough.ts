// FUSE passthrough (Linux 6.9+, protocol 7.40): an OPEN or CREATE reply can
// name a backing file (FOPEN_PASSTHROUGH and a backing id registered with
// FUSE_DEV_IOC_BACKING_OPEN); the kernel then reads, writes and maps that
// file itself, as kernel overlayfs does with its real files, and no READ or
// WRITE request reaches the daemon.
//
// Where it is used: upper regular files only. A handle opened read-only on a
// lower file must go on reading a later copy-up of that file (as the kernel
// does since 4.19: Overlay.followCopyUp); a backing file cannot be switched,
// so lower files stay with the daemon. And only files without set-id bits,
// opened first by root: with FUSE_HANDLE_KILLPRIV_V2 the kernel leaves
// clearing set-id bits on write to the server, which never sees a
// passthrough write; root (with CAP_FSETID) keeps them anyway.
//
// The kernel's rule (fs/fuse/iomode.c): while an inode has files open in one
// mode, every new open must use the same mode, and all passthrough opens the
// same backing file; otherwise open(2) fails with EIO. So the mode is kept
// per node: the first open decides, later ones follow it, and the backing id
// lives while the node has passthrough files open. Counts drop when the
// RELEASE arrives, which the kernel sends after it has dropped the file
// itself: they never undercount the kernel's, so the mode chosen is always
// one the kernel accepts.
import { constants } from 'os';
import { native } from '../native';

/** The upper file behind an open handle, for passthrough. */
export interface BackingCandidate {
  /** A descriptor of the file (the handle's own). */
  fd: number;
  /** Its identity (dev:ino): later opens of the node must be of the same file. */
  key: string;
  /** Whether the file may be passed through (no set-id bits). */
  eligible: boolean;
}

interface NodeMode {
  /** Open files the kernel serves from its own page cache (through the daemon). */
  cached: number;
  /** Open passthrough files, all on `backing`. */
  passthrough: number;
  backing: number;
  key: string;
}

const { EPERM, ENOTTY, EOPNOTSUPP, EINVAL, EIO } = constants.errno;

export class Passthrough {
  private readonly modes = new Map<number, NodeMode>();
  /** Open handles: their node, and whether they were passed through. */
  private readonly handles = new Map<number, { node: number; passthrough: boolean }>();
  /** Why passthrough is not used, once known (negotiation, or the first refused registration). */
  off: string | undefined;
  /** Files opened with passthrough, for status. */
  opened = 0;

  constructor(
    private readonly devFd: number,
    private readonly log: (msg: string) => void,
  ) {}

  /**
   * Decides how handle fh, just opened on node, is answered: a backing id
   * for FOPEN_PASSTHROUGH, 0 for an ordinary open, or -EIO when it cannot
   * be opened in any mode the kernel would accept (the node is passed
   * through to another file: its upper file was replaced behind the mount).
   * file: the upper file behind the handle (undefined for a lower file);
   * prefer: this open may start passthrough for the node (opened by root).
   */
  open(node: number, fh: number, file: BackingCandidate | undefined, prefer: boolean): number {
    let m = this.modes.get(node);
    if (m !== undefined && m.passthrough > 0) {
      if (file === undefined || file.key !== m.key) return -EIO;
      m.passthrough++;
      this.handles.set(fh, { node, passthrough: true });
      this.opened++;
      return m.backing;
    }
    m ??= { cached: 0, passthrough: 0, backing: 0, key: '' };
    this.modes.set(node, m);
    const id = m.cached === 0 && file !== undefined && file.eligible && prefer && this.off === undefined ? this.register(file.fd) : 0;
    if (id > 0) {
      m.passthrough = 1;
      m.backing = id;
      m.key = file!.key;
      this.opened++;
    } else {
      m.cached++;
    }
    this.handles.set(fh, { node, passthrough: id > 0 });
    return id;
  }

  /** The handle was released (RELEASE); the node's backing file goes with its last passthrough handle. */
  release(fh: number): void {
    const h = this.handles.get(fh);
    if (h === undefined) return;
    this.handles.delete(fh);
    const m = this.modes.get(h.node);
    if (m === undefined) return;
    if (!h.passthrough) m.cached--;
    else if (--m.passthrough === 0) native().fuseBackingClose(this.devFd, m.backing);
    if (m.cached <= 0 && m.passthrough <= 0) this.modes.delete(h.node);
  }

  /** Whether handle fh was passed through (its reads and writes bypass the daemon). */
  passedThrough(fh: number): boolean {
    return this.handles.get(fh)?.passthrough ?? false;
  }

  private register(fd: number): number {
    const id = native().fuseBackingOpen(this.devFd, fd);
    if (id > 0) return id;
    // Refused for good (no CAP_SYS_ADMIN in the initial namespace, a kernel
    // without it): off from now on, said once. Anything else (ELOOP: the
    // upper is itself stacked too deep) is this file's: served normally.
    if (id === -EPERM || id === -ENOTTY || id === -EOPNOTSUPP || id === -EINVAL) {
      this.off = `the kernel refused a backing file (${id === -EPERM ? 'EPERM: needs CAP_SYS_ADMIN in the initial user namespace' : `errno ${-id}`})`;
      this.log(`passthrough off: ${this.off}`);
    }
    return 0;
  }
}
