// Lookup and readdir rules over in-memory layers: every whiteout and opaque
// form, merge stops, and the reasons recorded for them.
import { hasCode } from '../../src/core/errors';
import { Overlay } from '../../src/core/overlay';
import { MemoryLayer } from '../../src/layers/memory';

async function overlay(...layers: MemoryLayer[]): Promise<Overlay> {
  return Overlay.open({ layers, layerNames: layers.map((_, i) => `lower${i + 1}`) });
}

async function names(ov: Overlay, p: string): Promise<string[]> {
  return (await ov.readdir(p)).map((e) => e.name).sort();
}

async function absent(ov: Overlay, p: string): Promise<boolean> {
  try {
    await ov.getattr(p);
    return false;
  } catch (err) {
    if (hasCode(err, 'ENOENT')) return true;
    throw err;
  }
}

describe('lookup through layers', () => {
  test('a non-directory in a higher layer hides everything below', async () => {
    const top = new MemoryLayer('top').file('a', 'top');
    const bottom = new MemoryLayer('bottom').file('a', 'bottom-long');
    bottom.mkdirp('b');
    top.file('b', 'file over dir');
    const ov = await overlay(top, bottom);
    expect((await ov.getattr('/a')).size).toBe(3);
    const r = await ov.resolve('/b');
    expect(r.entries.map((e) => e.layer)).toEqual([0]);
    expect(r.stop).toEqual({ kind: 'non-directory', layer: 0 });
  });

  test('directories merge; nlink of a merged directory is 1', async () => {
    const top = new MemoryLayer('top').file('d/a', '1');
    const mid = new MemoryLayer('mid').file('d/b', '2');
    const bottom = new MemoryLayer('bottom').file('d/c', '3').file('d/a', 'hidden');
    const ov = await overlay(top, mid, bottom);
    expect(await names(ov, '/d')).toEqual(['a', 'b', 'c']);
    expect((await ov.getattr('/d')).nlink).toBe(1);
    const entries = await ov.readdir('/d');
    expect(entries.find((e) => e.name === 'c')!.layer).toBe(2);
  });

  test('a directory below a non-directory stops the merge', async () => {
    const top = new MemoryLayer('top').file('d/a');
    const mid = new MemoryLayer('mid').file('d', 'a file');
    const bottom = new MemoryLayer('bottom').file('d/c');
    const ov = await overlay(top, mid, bottom);
    expect(await names(ov, '/d')).toEqual(['a']);
    expect((await ov.resolve('/d')).stop).toEqual({ kind: 'non-directory-below', layer: 1 });
  });

  test.each([
    ['chardev', (l: MemoryLayer) => l.whiteout('d/x')],
    ['wh-file', (l: MemoryLayer) => l.file('d/.wh.x')],
    ['xattr', (l: MemoryLayer) => l.file('d/x').setxattr('d', 'trusted.overlay.opaque', 'x').setxattr('d/x', 'trusted.overlay.whiteout', '')],
    ['xattr', (l: MemoryLayer) => l.file('d/x').setxattr('d', 'user.overlay.opaque', 'x').setxattr('d/x', 'user.overlay.whiteout', '')],
  ])('whiteout form %s hides the name below and is never listed', async (form, make) => {
    const top = new MemoryLayer('top').file('d/keep');
    const mid = new MemoryLayer('mid');
    mid.mkdirp('d');
    make(mid);
    const bottom = new MemoryLayer('bottom').file('d/x', 'lower').file('d/y');
    const ov = await overlay(top, mid, bottom);
    expect(await names(ov, '/d')).toEqual(['keep', 'y']);
    expect(await absent(ov, '/d/x')).toBe(true);
    expect((await ov.resolveMaybe('/d/x')).stop).toEqual({ kind: 'whiteout', layer: 1, form });
  });

  test('an xattr whiteout without overlay.opaque=x on its directory is an ordinary file', async () => {
    const top = new MemoryLayer('top').file('d/x').setxattr('d/x', 'trusted.overlay.whiteout', '');
    const bottom = new MemoryLayer('bottom').file('d/x', 'lower');
    const ov = await overlay(top, bottom);
    expect((await ov.getattr('/d/x')).size).toBe(0);
  });

  test('a ".wh." marker does not hide the same name in its own layer', async () => {
    const top = new MemoryLayer('top').file('d/x', 'same layer').file('d/.wh.x');
    const bottom = new MemoryLayer('bottom').file('d/x', 'lower');
    const ov = await overlay(top, bottom);
    expect(await names(ov, '/d')).toEqual(['x']);
    expect((await ov.getattr('/d/x')).size).toBe('same layer'.length);
  });

  test.each([
    ['trusted.overlay.opaque', (l: MemoryLayer) => l.setxattr('d', 'trusted.overlay.opaque', 'y')],
    ['user.overlay.opaque', (l: MemoryLayer) => l.setxattr('d', 'user.overlay.opaque', 'y')],
    ['user.fuseoverlayfs.opaque', (l: MemoryLayer) => l.setxattr('d', 'user.fuseoverlayfs.opaque', 'y')],
    ['.wh..wh..opq', (l: MemoryLayer) => l.file('d/.wh..wh..opq')],
  ])('opaque form %s stops the merge and hides lower children', async (form, make) => {
    const top = new MemoryLayer('top').file('d/a');
    const mid = new MemoryLayer('mid').file('d/b');
    make(mid);
    const bottom = new MemoryLayer('bottom').file('d/c');
    const ov = await overlay(top, mid, bottom);
    expect(await names(ov, '/d')).toEqual(['a', 'b']);
    expect(await absent(ov, '/d/c')).toBe(true);
    const r = await ov.resolve('/d');
    expect(r.stop).toEqual({ kind: 'opaque', layer: 1, form });
  });

  test('overlay.opaque=x is not opaque', async () => {
    const top = new MemoryLayer('top').file('d/a').setxattr('d', 'trusted.overlay.opaque', 'x');
    const bottom = new MemoryLayer('bottom').file('d/c');
    const ov = await overlay(top, bottom);
    expect(await names(ov, '/d')).toEqual(['a', 'c']);
  });

  test('the root merges every layer, whatever markers its layer roots carry', async () => {
    const top = new MemoryLayer('top').file('a').setxattr('', 'trusted.overlay.opaque', 'y').file('.wh..wh..opq');
    const bottom = new MemoryLayer('bottom').file('b');
    const ov = await overlay(top, bottom);
    expect(await names(ov, '/')).toEqual(['a', 'b']);
  });

  test('names starting with .wh. cannot be looked up', async () => {
    const top = new MemoryLayer('top').file('.wh.x').file('.wh.plain');
    const ov = await overlay(top);
    expect(await absent(ov, '/.wh.x')).toBe(true);
    expect(await names(ov, '/')).toEqual([]);
  });

  test('ENOTDIR through a file, ENOENT through a whiteout', async () => {
    const top = new MemoryLayer('top').file('f').whiteout('gone');
    const bottom = new MemoryLayer('bottom').file('gone/child');
    const ov = await overlay(top, bottom);
    await expect(ov.getattr('/f/x')).rejects.toMatchObject({ code: 'ENOTDIR' });
    await expect(ov.getattr('/gone/child')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  test('private xattrs are hidden; others pass through', async () => {
    const top = new MemoryLayer('top').file('f').setxattr('f', 'user.keep', 'v').setxattr('f', 'trusted.overlay.origin', 'o').setxattr('f', 'user.overlay.redirect', 'r');
    const ov = await overlay(top);
    expect(await ov.listxattr('/f')).toEqual(['user.keep']);
    expect((await ov.getxattr('/f', 'user.keep')).toString()).toBe('v');
    await expect(ov.getxattr('/f', 'trusted.overlay.origin')).rejects.toMatchObject({ code: 'ENODATA' });
  });

  test('every modifying open answers EROFS; reads read the winning layer', async () => {
    const top = new MemoryLayer('top').file('f', 'hello world');
    const ov = await overlay(top);
    await expect(ov.open('/f', 1)).rejects.toMatchObject({ code: 'EROFS' });
    const fh = await ov.open('/f', 0);
    const buf = Buffer.alloc(64);
    const n = await ov.read(fh, buf, 64, 6);
    expect(buf.subarray(0, n).toString()).toBe('world');
    await ov.release(fh);
    expect(ov.openFiles).toBe(0);
  });

  test('readlink of a symlink in a lower layer', async () => {
    const ov = await overlay(new MemoryLayer('top'), new MemoryLayer('b').symlink('l', '../target'));
    expect(await ov.readlink('/l')).toBe('../target');
    await expect(ov.readlink('/')).rejects.toMatchObject({ code: 'EINVAL' });
  });
});
