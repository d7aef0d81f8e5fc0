// The part of fuse-native 2.2.6's API that layerfs uses. Callbacks take a
// result first: 0 or a negative errno, or for read/getxattr a byte count.
declare module 'fuse-native' {
  type Cb = (res: number, ...values: unknown[]) => void;
  export type Signal = (res: number, ...values: unknown[]) => void;
  export interface FuseOps {
    [op: string]: ((...args: any[]) => void) | undefined;
  }
  export interface FuseOpts {
    timeout?: false | number;
    force?: boolean;
    mkdir?: boolean;
    debug?: boolean;
  }
  class Fuse {
    constructor(mnt: string, ops: FuseOps, opts?: FuseOpts);
    readonly mnt: string;
    readonly opts: FuseOpts;
    mount(cb: (err: Error | null) => void): void;
    protected _fuseOptions(): string;
    protected _thread: Buffer | null;
    static unmount(mnt: string, cb: Cb): void;
  }
  export default Fuse;
  export = Fuse;
}
