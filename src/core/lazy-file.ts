// A lower file opened on its first read.
// With kernel caching, an open(2) of a file whose pages the kernel keeps
// (FOPEN_KEEP_CACHE) sends OPEN and RELEASE but no READ; opening the layer's
// file only when a read arrives makes such an open cost no call on the lower
// layer. Lower layers do not change while mounted (the overlay contract), so
// deferring the open does not change what is read. The price: a failure to
// open the layer file (EMFILE, EIO) is reported by the first read instead of
// by open(2). Upper files are opened at once: they can be removed directly
// in the upper directory, and open re-resolves when that happened.
import type { Layer, LayerFile } from './layer';
import type { LayerPath } from './paths';

export class LazyFile implements LayerFile {
  private file: Promise<LayerFile> | undefined;

  constructor(
    private readonly layer: Layer,
    private readonly path: LayerPath,
    private readonly flags: number,
  ) {}

  async read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    this.file ??= this.layer.open(this.path, this.flags);
    return (await this.file).read(buf, offset, length, position);
  }

  async close(): Promise<void> {
    if (this.file === undefined) return;
    const f = await this.file.catch(() => undefined);
    await f?.close();
  }
}
