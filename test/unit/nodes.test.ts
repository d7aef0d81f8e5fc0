// The node table: kernel node ids <-> merged paths, through renames,
// unlinks, forgets and eviction.
import { NodeTable } from '../../src/fuse/nodes';
import { mergedPath } from '../../src/core/paths';

const ROOT_ID = 1;

function tree(t: NodeTable): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [id, p] of t.entries()) out[p] = id;
  return out;
}

describe('NodeTable', () => {
  test('a held name keeps its id; paths are built through the parents', () => {
    const t = new NodeTable();
    const a = t.remember(ROOT_ID, 'a')!;
    const b = t.remember(a.id, 'b')!;
    expect(t.remember(ROOT_ID, 'a')!.id).toBe(a.id);
    expect(a.nlookup).toBe(2);
    expect(t.pathOf(b.id)).toBe('/a/b');
    expect(t.idOf(mergedPath('/a/b'))).toBe(b.id);
    expect(t.idIn(a.id, 'b')).toBe(b.id);
    expect(t.remember(9999, 'x')).toBeUndefined();
  });

  test('rename moves the subtree; the target name is detached', () => {
    const t = new NodeTable();
    const a = t.remember(ROOT_ID, 'a')!;
    const b = t.remember(a.id, 'b')!;
    const c = t.remember(b.id, 'c')!;
    const d = t.remember(ROOT_ID, 'd')!;
    const old = t.remember(d.id, 'x')!;
    t.move(a.id, 'b', d.id, 'x');
    expect(t.pathOf(c.id)).toBe('/d/x/c');
    expect(t.pathOf(old.id)).toBeUndefined(); // replaced: open handles only
    expect(t.idOf(mergedPath('/a/b'))).toBeUndefined();
    expect(tree(t)).toEqual({ '/': ROOT_ID, '/a': a.id, '/d': d.id, '/d/x': b.id, '/d/x/c': c.id });
  });

  test('exchange trades the two names, one side may be absent', () => {
    const t = new NodeTable();
    const a = t.remember(ROOT_ID, 'a')!;
    const b = t.remember(ROOT_ID, 'b')!;
    const ac = t.remember(a.id, 'c')!;
    t.exchange(ROOT_ID, 'a', ROOT_ID, 'b');
    expect(t.pathOf(ac.id)).toBe('/b/c');
    expect(t.pathOf(b.id)).toBe('/a');
    t.exchange(ROOT_ID, 'a', ROOT_ID, 'nothing');
    expect(t.pathOf(b.id)).toBe('/nothing');
    expect(t.idOf(mergedPath('/a'))).toBeUndefined();
  });

  test('unlink detaches the node and everything below it; forget removes nodes', () => {
    const t = new NodeTable();
    const a = t.remember(ROOT_ID, 'a')!;
    const f = t.remember(a.id, 'f')!;
    t.detach(ROOT_ID, 'a');
    expect(t.pathOf(a.id)).toBeUndefined();
    expect(t.pathOf(f.id)).toBeUndefined();
    const a2 = t.remember(ROOT_ID, 'a')!;
    expect(a2.id).not.toBe(a.id);
    expect(t.size).toBe(4);
    t.forget(a.id, 1); // still has f below it
    expect(t.size).toBe(4);
    t.forget(f.id, 1); // f goes, then a with it
    expect(t.size).toBe(2);
    t.forget(a2.id, 1);
    expect(t.size).toBe(1);
    t.forget(ROOT_ID, 1); // the root is never forgotten
    expect(t.pathOf(ROOT_ID)).toBe('/');
  });

  test('a directory forgotten before its children stays until they go', () => {
    const t = new NodeTable();
    const a = t.remember(ROOT_ID, 'a')!;
    const f = t.remember(a.id, 'f')!;
    t.forget(a.id, 1);
    expect(t.pathOf(f.id)).toBe('/a/f');
    expect(t.remember(ROOT_ID, 'a')!.id).toBe(a.id);
    t.forget(a.id, 1);
    t.forget(f.id, 1);
    expect(t.size).toBe(1);
  });

  test('evictable: least recently looked-up leaves first, each named once', () => {
    const t = new NodeTable();
    const d = t.remember(ROOT_ID, 'd')!;
    const f1 = t.remember(d.id, 'f1')!;
    const f2 = t.remember(d.id, 'f2')!;
    const g = t.remember(ROOT_ID, 'g')!;
    t.remember(d.id, 'f1'); // f1 is now the most recent
    expect(t.evictable(2)).toEqual([
      [d.id, 'f2'],
      [ROOT_ID, 'g'],
    ]);
    expect(t.evictable(5)).toEqual([[d.id, 'f1']]); // d has children; the others are being evicted
    t.forget(f1.id, 2);
    t.forget(f2.id, 1);
    t.forget(g.id, 1);
    expect(t.evictable(5)).toEqual([[ROOT_ID, 'd']]);
    t.remember(ROOT_ID, 'd'); // looked up again: evictable again later
    expect(t.evictable(5)).toEqual([[ROOT_ID, 'd']]);
  });
});
