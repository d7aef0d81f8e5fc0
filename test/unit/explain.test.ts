// explain over in-memory layers: one fixture with every whiteout and opaque
// form, checked layer by layer. The same fixture is checked on disk, mounted
// and offline, in test/integration/control.test.ts.
import { explain } from '../../src/core/explain';
import { mergedPath } from '../../src/core/paths';
import { MemoryLayer } from '../../src/layers/memory';

/** upper, lower1, lower2: every marker form somewhere. */
export function fixture(): MemoryLayer[] {
  const upper = new MemoryLayer('U');
  const l1 = new MemoryLayer('L1');
  const l2 = new MemoryLayer('L2');
  l2.file('only2', 'in lower2').file('d/a', 'a2').file('d/b', 'b2').file('gone/f', 'f');
  l2.file('wo/chr', 'x').file('wo/wh', 'x').file('wo/xa', 'x').file('op/hidden', 'h').file('opq/hidden', 'h').file('uop/hidden', 'h');
  l2.file('shadow/inner', 'i');
  l1.file('d/b', 'b1-longer').file('d/c', 'c1');
  l1.whiteout('gone');
  l1.mkdirp('wo');
  l1.whiteout('wo/chr');
  l1.file('wo/.wh.wh');
  l1.file('wo/xa').setxattr('wo', 'trusted.overlay.opaque', 'x').setxattr('wo/xa', 'trusted.overlay.whiteout', '');
  l1.file('op/mine', 'm').setxattr('op', 'trusted.overlay.opaque', 'y');
  l1.file('opq/mine', 'm').file('opq/.wh..wh..opq');
  l1.file('shadow', 'a file over a directory');
  l1.file('fop/mine').setxattr('fop', 'user.fuseoverlayfs.opaque', 'y');
  l2.file('fop/hidden', 'h').file('wo2/uxa', 'x');
  l1.file('wo2/uxa').setxattr('wo2', 'user.overlay.opaque', 'x').setxattr('wo2/uxa', 'user.overlay.whiteout', '');
  upper.file('uop/new', 'n').setxattr('uop', 'user.overlay.opaque', 'y');
  upper.file('d/a', 'upper a');
  return [upper, l1, l2];
}

const NAMES = ['upper', 'lower1', 'lower2'];

async function x(p: string) {
  return explain(fixture(), NAMES, mergedPath(p));
}

const roles = (e: Awaited<ReturnType<typeof x>>) => e.layers.map((l) => `${l.name}:${l.role}`);

describe('explain', () => {
  test('a file only in lower2 is served by lower2', async () => {
    const e = await x('/only2');
    expect(e.present).toBe(true);
    expect(e.winner).toBe('lower2');
    expect(e.type).toBe('file');
    expect(roles(e)).toEqual(['upper:absent', 'lower1:absent', 'lower2:winner']);
    expect(e.verdict).toBe('lower2 wins: no layer above it has /only2');
    expect(e.layers[2].has).toMatchObject({ kind: 'object', type: 'file', size: 9 });
  });

  test('a merged directory names the layer of each entry', async () => {
    const e = await x('/d');
    expect(roles(e)).toEqual(['upper:winner', 'lower1:merged', 'lower2:merged']);
    expect(e.entries).toEqual([
      { name: 'a', type: 'file', layer: 'upper' },
      { name: 'b', type: 'file', layer: 'lower1' },
      { name: 'c', type: 'file', layer: 'lower1' },
    ]);
    expect(e.verdict).toContain('merged with lower1, lower2');
    const b = await x('/d/b');
    expect(roles(b)).toEqual(['upper:absent', 'lower1:winner', 'lower2:hidden']);
    expect(b.layers[2].why).toBe('lower1 has a non-directory at /d/b');
  });

  test.each([
    ['/wo/chr', 'chardev'],
    ['/wo/wh', 'wh-file'],
    ['/wo/xa', 'xattr'],
    ['/wo2/uxa', 'xattr'],
  ])('%s is hidden by a whiteout of form %s in lower1', async (p, form) => {
    const e = await x(p);
    expect(e.present).toBe(false);
    expect(e.verdict).toBe(`hidden by a whiteout (${form}) in lower1 at ${p}`);
    expect(roles(e)).toEqual(['upper:absent', 'lower1:whiteout', 'lower2:hidden']);
    expect(e.layers[1].has).toEqual({ kind: 'whiteout', form });
    expect(e.layers[2].why).toBe(`whiteout (${form}) in lower1 at ${p}`);
  });

  test('a whiteout of a directory hides everything under it, named at the directory', async () => {
    const e = await x('/gone/f');
    expect(e.present).toBe(false);
    expect(roles(e)).toEqual(['upper:absent', 'lower1:absent', 'lower2:hidden']);
    expect(e.layers[2].why).toBe('whiteout (chardev) in lower1 at /gone');
    expect(e.verdict).toBe('hidden by a whiteout (chardev) in lower1 at /gone');
  });

  test.each([
    ['/op', 'trusted.overlay.opaque', 'lower1'],
    ['/opq', '.wh..wh..opq', 'lower1'],
    ['/uop', 'user.overlay.opaque', 'upper'],
    ['/fop', 'user.fuseoverlayfs.opaque', 'lower1'],
  ])('a lookup under opaque %s (%s) names that directory', async (dir, form, layer) => {
    const e = await x(`${dir}/hidden`);
    expect(e.present).toBe(false);
    expect(e.verdict).toBe(`hidden: ${layer}'s directory ${dir} is opaque (${form})`);
    expect(e.layers[2].role).toBe('hidden');
    const d = await x(dir);
    const i = NAMES.indexOf(layer);
    expect(d.layers[i].has).toMatchObject({ kind: 'object', type: 'directory', opaque: form });
    expect(d.verdict).toContain(`the merge stops: ${layer}'s directory ${dir} is opaque (${form})`);
    expect(d.entries!.map((n) => n.name)).not.toContain('hidden');
  });

  test('a file above a directory hides the directory and all below it', async () => {
    const e = await x('/shadow');
    expect(roles(e)).toEqual(['upper:absent', 'lower1:winner', 'lower2:hidden']);
    const inner = await x('/shadow/inner');
    expect(inner.present).toBe(false);
    expect(inner.verdict).toBe('/shadow is a file in lower1, not a directory');
    expect(inner.layers[2].role).toBe('hidden');
  });

  test('deeper under an opaque directory, the opaque directory is still named', async () => {
    const f = fixture();
    f[2].file('op/sub/deep', 'd');
    const e = await explain(f, NAMES, mergedPath('/op/sub/deep'));
    expect(e.verdict).toBe("hidden: lower1's directory /op is opaque (trusted.overlay.opaque)");
    expect(e.layers[2].why).toBe("lower1's directory /op is opaque (trusted.overlay.opaque)");
  });

  test('a name in no layer', async () => {
    const e = await x('/d/nothing');
    expect(e.present).toBe(false);
    expect(e.verdict).toBe('in no layer');
    expect(roles(e)).toEqual(['upper:absent', 'lower1:absent', 'lower2:absent']);
  });
});
