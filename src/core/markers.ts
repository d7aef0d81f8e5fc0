// Writing whiteouts and opaque markers in the upper layer, in the form kernel
// overlayfs reads (see whiteout.ts for every form that is read).
//
// Whiteouts:
//   - chardev: a character device 0/0, the kernel's native form. Needs mknod,
//     which root (or root in a user namespace, kernel 5.8+) has.
//   - xattr: where mknod is refused, a zero-size file carrying
//     <ns>.overlay.whiteout, inside a directory marked <ns>.overlay.opaque=x.
//     Kernel 6.7+ reads this form (with userxattr when <ns> is user).
// Which form is used is decided once per mount by probe() in the work directory.
//
// Opaque directories: <ns>.overlay.opaque=y, where <ns> is trusted when the
// daemon may set trusted.* xattrs (CAP_SYS_ADMIN in the initial user
// namespace), else user: the userxattr option, an unprivileged user, root in
// a user namespace. Kernel overlayfs reads user.overlay.* only when mounted
// with userxattr.
import { hasCode } from './errors';
import type { Loc, UpperLayer } from './layer';
import type { LayerPath } from './paths';
import { S_IFCHR } from './stat';

export type WhiteoutWriteForm = 'chardev' | 'xattr';

export interface MarkerConfig {
  whiteout: WhiteoutWriteForm;
  /** 'trusted' or 'user': the namespace of the overlay.* xattrs written. */
  xattrNs: 'trusted' | 'user';
  /** What the probe tried and why it chose these forms, for --verbose and status. */
  why: string[];
}

const Y = Buffer.from('y');
const X = Buffer.from('x');

export class Markers {
  constructor(
    private readonly upper: UpperLayer,
    readonly config: MarkerConfig,
  ) {}

  get opaqueXattr(): string {
    return `${this.config.xattrNs}.overlay.opaque`;
  }

  get whiteoutXattr(): string {
    return `${this.config.xattrNs}.overlay.whiteout`;
  }

  /**
   * Creates a whiteout at loc, which must not exist. For the xattr form,
   * parentDir is the upper directory the whiteout will end up in: it is
   * marked opaque=x first, so the marker counts from the moment it lands.
   */
  async makeWhiteout(loc: Loc, parentDir: LayerPath): Promise<void> {
    if (this.config.whiteout === 'chardev') {
      await this.upper.mknod(loc, S_IFCHR, 0);
      return;
    }
    await this.markXwhiteouts(parentDir);
    await this.upper.mknod(loc, 0o100000, 0);
    await this.upper.setxattr(loc, this.whiteoutXattr, Y, 0);
  }

  /** Sets opaque=x on an upper directory unless it is already opaque=y or =x. */
  private async markXwhiteouts(dir: LayerPath): Promise<void> {
    try {
      const v = await this.upper.getxattrAt(dir, this.opaqueXattr);
      if (v.length > 0 && (v[0] === 0x79 || v[0] === 0x78)) return;
    } catch (err) {
      if (!hasCode(err, 'ENODATA')) throw err;
    }
    await this.upper.setxattr(dir, this.opaqueXattr, X, 0);
  }

  async setOpaque(loc: Loc): Promise<void> {
    await this.upper.setxattr(loc, this.opaqueXattr, Y, 0);
  }
}

/**
 * Decides the forms for this mount by trying them in the work directory: a
 * 0/0 char device by mknod (root, root in a user namespace, and since Linux
 * 5.8 any user), else the xattr form; trusted.overlay.* xattrs unless
 * userxattr is asked for, else (refused) user.overlay.*. Throws (with the
 * reason) when the upper can hold neither.
 */
export async function probeMarkers(upper: UpperLayer, want: { userxattr: boolean }, tmpName: () => string): Promise<MarkerConfig> {
  const why: string[] = [];
  const dev = { work: tmpName() };
  let whiteout: WhiteoutWriteForm = 'chardev';
  try {
    await upper.mknod(dev, S_IFCHR, 0);
    await upper.unlink(dev);
    why.push('mknod of a 0/0 character device: allowed');
  } catch (err) {
    if (!hasCode(err, 'EPERM', 'EACCES', 'EOPNOTSUPP', 'ENOTSUP')) throw err;
    whiteout = 'xattr';
    why.push(`mknod of a 0/0 character device: refused (${codeOf(err)})`);
  }
  const dir = { work: tmpName() };
  await upper.mkdir(dir, 0o700);
  let xattrNs: MarkerConfig['xattrNs'] = want.userxattr ? 'user' : 'trusted';
  try {
    if (xattrNs === 'trusted') {
      try {
        await upper.setxattr(dir, 'trusted.overlay.opaque', Y, 0);
        why.push('trusted.overlay.* xattrs: allowed');
      } catch (err) {
        if (!hasCode(err, 'EPERM', 'EACCES', 'EOPNOTSUPP', 'ENOTSUP')) throw err;
        why.push(`trusted.overlay.* xattrs: refused (${codeOf(err)}), user.overlay.* used (kernel overlayfs reads them with userxattr)`);
        xattrNs = 'user';
      }
    } else {
      why.push('user.overlay.* xattrs: asked for (userxattr)');
    }
    if (xattrNs === 'user') await upper.setxattr(dir, 'user.overlay.opaque', Y, 0);
  } finally {
    await upper.rmdir(dir);
  }
  return { whiteout, xattrNs, why };
}

function codeOf(err: unknown): string {
  return (err as { code?: string }).code ?? 'error';
}
