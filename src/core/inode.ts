// Inode numbers shown through the mount. They must be stable for the life of
// the mount and unique across layers.
//   - All layers on one filesystem ("samefs", the kernel's term): the real
//     st_ino of the object's top layer passes through unchanged, exactly as
//     kernel overlayfs does (and as Nix's tests expect).
//   - Layers on several filesystems: the real number is kept in the low 48 bits
//     and the index of the layer's filesystem goes above it (the kernel's xino
//     idea), with the top layer's filesystem as index 0, so the upper keeps real
//     numbers. A transport that carries fewer bits truncates at its own edge.
import type { LayerEntry } from './lookup';

const LOW_BITS = 48n;
const LOW_MASK = (1n << LOW_BITS) - 1n;

export class InodeNumbers {
  private readonly fsIndexOfLayer: number[];
  readonly samefs: boolean;

  /** rootDevs: st_dev of each layer's root, in layer order (upper first). */
  constructor(rootDevs: readonly bigint[]) {
    const devs: bigint[] = [];
    this.fsIndexOfLayer = rootDevs.map((d) => {
      let i = devs.indexOf(d);
      if (i < 0) i = devs.push(d) - 1;
      return i;
    });
    this.samefs = devs.length <= 1;
  }

  of(entry: LayerEntry): bigint {
    if (this.samefs) return entry.stat.ino;
    return (BigInt(this.fsIndexOfLayer[entry.layer]) << LOW_BITS) | (entry.stat.ino & LOW_MASK);
  }
}
