// The persistent lower index: an overlay over indexed lower layers shows
// exactly what it shows over the layers themselves, makes no lstat, readdir,
// readlink or xattr call on them while walking, picks up names a lower root
// gained, and refuses an index whose layer lost names.
import * as fs from 'fs';
import * as path from 'path';
import { checkIndex } from '../../src/cache/index-check';
import { buildIndex, openIndex } from '../../src/cache/lower-index';
import { Overlay } from '../../src/core/overlay';
import { HostLayer } from '../../src/layers/host';
import { native } from '../../src/native';
import { IndexedLayer } from '../../src/layers/indexed';
import { tmpdir } from '../helpers/env';
import { kernelForms, mixedForms, randomStack, writeStack } from '../helpers/stack';

async function walk(ov: Overlay): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const rec = async (dir: string): Promise<void> => {
    for (const e of await ov.readdir(dir)) {
      const p = dir === '/' ? `/${e.name}` : `${dir}/${e.name}`;
      const st = await ov.getattr(p);
      out[p] = `${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.size} ${st.ino} ${st.mtimeNs} n${st.nlink} l${e.layer}`;
      if ((st.mode & 0o170000) === 0o120000) out[p] += ` -> ${await ov.readlink(p)}`;
      for (const x of (await ov.listxattr(p)).sort()) out[p] += ` ${x}=${(await ov.getxattr(p, x)).toString()}`;
      if ((st.mode & 0o170000) === 0o040000) await rec(p);
    }
  };
  await rec('/');
  return out;
}

describe('lower index', () => {
  let base: string;
  beforeEach(() => {
    base = tmpdir('lfs-index-');
  });
  afterEach(() => fs.rmSync(base, { recursive: true, force: true }));

  test.each([[1, kernelForms], [2, mixedForms], [3, kernelForms]] as const)(
    'seed %i: same merged tree from the index as from the layers, with no metadata call on them',
    async (seed, forms) => {
      const lowers = writeStack(path.join(base, 'stack'), randomStack(seed, 3), forms);
      const idx = path.join(base, 'idx');
      for (const l of lowers) expect(buildIndex(idx, l).entries).toBeGreaterThan(1);
      const plain = await Overlay.open({ layers: lowers.map((l) => new HostLayer(l)), layerNames: ['l1', 'l2', 'l3'] });
      const hosts = lowers.map((l) => new HostLayer(l));
      const indexedLayers = hosts.map((h, i) => {
        const r = openIndex(idx, lowers[i]);
        if (r.index === undefined) throw new Error(r.why);
        return new IndexedLayer(h, r.index);
      });
      const fromIndex = await Overlay.open({ layers: indexedLayers, layerNames: ['l1', 'l2', 'l3'] });
      const want = await walk(plain);
      expect(Object.keys(want).length).toBeGreaterThan(5);
      expect(await walk(fromIndex)).toEqual(want);
      const calls = hosts.map((h) => h.calls.snapshot());
      for (const c of calls) for (const k of ['lstat', 'readdir', 'readlink', 'lgetxattr', 'llistxattr']) expect(c[k] ?? 0).toBe(0);
      const queries = () => indexedLayers.reduce((a, l) => a + l.queries, 0);
      expect(queries()).toBeGreaterThan(0);
      // xattrs of cached lookups come with the stat: no index query (`ls -l`
      // asks for security.selinux on every file, every time).
      const before = queries();
      for (const p of Object.keys(want)) {
        await expect(fromIndex.getxattr(p, 'security.selinux')).rejects.toMatchObject({ code: 'ENODATA' });
        for (const x of await fromIndex.listxattr(p)) expect(await fromIndex.getxattr(p, x)).toEqual(await plain.getxattr(p, x));
      }
      expect(queries()).toBe(before);
    },
  );

  test('a lower root that grew: new names are indexed when the index is opened; a lost name refuses it', async () => {
    const lower = path.join(base, 'lower');
    fs.mkdirSync(path.join(lower, 'aaa-pkg/bin'), { recursive: true });
    fs.writeFileSync(path.join(lower, 'aaa-pkg/bin/x'), 'x');
    const idx = path.join(base, 'idx');
    buildIndex(idx, lower);
    // Directory mtimes have nanosecond resolution here; make the change visible anyway.
    fs.mkdirSync(path.join(lower, 'bbb-new/lib'), { recursive: true });
    fs.writeFileSync(path.join(lower, 'bbb-new/lib/y'), 'yy');
    const r = openIndex(idx, lower);
    if (r.index === undefined) throw new Error(r.why);
    expect(r.grew).toEqual(['bbb-new']);
    const host = new HostLayer(lower);
    const ov = await Overlay.open({ layers: [new IndexedLayer(host, r.index)], layerNames: ['l1'] });
    expect((await ov.getattr('/bbb-new/lib/y')).size).toBe(2);
    expect((await ov.readdir('/')).map((e) => e.name).sort()).toEqual(['aaa-pkg', 'bbb-new']);
    expect(host.calls.snapshot().lstat ?? 0).toBe(0);
    r.index.close();
    // Names only in the root while mounted: served from the layer itself.
    const r2 = openIndex(idx, lower);
    if (r2.index === undefined) throw new Error(r2.why);
    const layer = new IndexedLayer(host, r2.index);
    const ov2 = await Overlay.open({ layers: [layer], layerNames: ['l1'] });
    await expect(ov2.getattr('/ccc-live')).rejects.toMatchObject({ code: 'ENOENT' });
    fs.writeFileSync(path.join(lower, 'ccc-live'), 'z');
    layer.rootChanged('ccc-live');
    ov2.lowerGrew('ccc-live');
    expect((await ov2.getattr('/ccc-live')).size).toBe(1);
    expect((await ov2.readdir('/')).map((e) => e.name).sort()).toEqual(['aaa-pkg', 'bbb-new', 'ccc-live']);
    r2.index.close();
    fs.rmSync(path.join(lower, 'aaa-pkg'), { recursive: true });
    const r3 = openIndex(idx, lower);
    expect(r3.index).toBeUndefined();
    if (r3.index === undefined) expect(r3.why).toMatch(/changed.*aaa-pkg.*rebuild/);
  });

  test('an index in use by a running mount: another mount serves new root names from the layer', async () => {
    const lower = path.join(base, 'shared');
    fs.mkdirSync(path.join(lower, 'aaa-pkg'), { recursive: true });
    const idx = path.join(base, 'idx-shared');
    buildIndex(idx, lower);
    const first = openIndex(idx, lower);
    if (first.index === undefined) throw new Error(first.why);
    expect(first.index.lookup('aaa-pkg')).toBeDefined(); // holds the shared lock from here on
    fs.mkdirSync(path.join(lower, 'bbb-new'));
    fs.writeFileSync(path.join(lower, 'bbb-new/f'), 'ff');
    const second = openIndex(idx, lower);
    if (second.index === undefined) throw new Error(second.why);
    expect(second.grew).toEqual([]);
    expect(second.unindexed).toEqual(['bbb-new']);
    const host = new HostLayer(lower);
    const layer = new IndexedLayer(host, second.index);
    for (const n of second.unindexed) layer.rootChanged(n);
    const ov = await Overlay.open({ layers: [layer], layerNames: ['l1'] });
    expect((await ov.getattr('/bbb-new/f')).size).toBe(2);
    expect((await ov.readdir('/')).map((e) => e.name).sort()).toEqual(['aaa-pkg', 'bbb-new']);
    first.index.close();
    second.index.close();
    // With no other mount, the next one indexes the growth.
    const third = openIndex(idx, lower);
    if (third.index === undefined) throw new Error(third.why);
    expect(third.grew).toEqual(['bbb-new']);
    third.index.close();
  });

  test('an index file that is not SQLite is no index: a reason, not an exception', () => {
    const lower = path.join(base, 'corrupt');
    fs.mkdirSync(path.join(lower, 'aaa-pkg'), { recursive: true });
    const idx = path.join(base, 'idx-corrupt');
    const { file } = buildIndex(idx, lower);
    fs.writeFileSync(file, 'not a database, whatever it once was');
    expect(openIndex(idx, lower)).toEqual({ index: undefined, why: `index ${file} is unreadable (file is not a database)` });
    expect(checkIndex(idx, lower)).toEqual({ file, why: `index ${file} is unreadable (file is not a database)` });
  });

  test('an index is keyed by the layer: another directory does not use it', async () => {
    const a = path.join(base, 'a');
    const b = path.join(base, 'b');
    fs.mkdirSync(a);
    fs.mkdirSync(b);
    buildIndex(path.join(base, 'idx'), a);
    expect(openIndex(path.join(base, 'idx'), a).index).toBeDefined();
    const rb = openIndex(path.join(base, 'idx'), b);
    expect(rb.index).toBeUndefined();
  });

  test('index check names each change below the root, ignores atime and root growth, and never writes the index', () => {
    const lower = path.join(base, 'checked');
    fs.mkdirSync(path.join(lower, 'aaa-pkg/bin'), { recursive: true });
    fs.mkdirSync(path.join(lower, 'aaa-pkg/lib/deep'), { recursive: true });
    fs.writeFileSync(path.join(lower, 'aaa-pkg/bin/tool'), 'tool');
    fs.writeFileSync(path.join(lower, 'aaa-pkg/bin/other'), 'other');
    fs.writeFileSync(path.join(lower, 'aaa-pkg/lib/deep/f'), 'f');
    fs.symlinkSync('bin/tool', path.join(lower, 'aaa-pkg/link'));
    fs.mkdirSync(path.join(lower, 'bbb-pkg'));
    const idx = path.join(base, 'idx');
    buildIndex(idx, lower);
    const file = fs.readdirSync(idx).find((f) => f.endsWith('.sqlite'))!;
    const bytes = () => fs.readFileSync(path.join(idx, file));
    const clean = checkIndex(idx, lower);
    if ('why' in clean) throw new Error(clean.why);
    expect(clean.differences).toEqual([]);
    expect(clean.checked).toBe(10);
    // Reading a file moves its atime only (relatime: atime was older than
    // mtime): not a difference.
    const tool = path.join(lower, 'aaa-pkg/bin/tool');
    fs.utimesSync(tool, new Date(Date.now() - 86_400_000), fs.statSync(tool).mtime);
    buildIndex(idx, lower);
    const atime = fs.statSync(tool).atimeMs;
    fs.readFileSync(tool);
    expect(fs.statSync(tool).atimeMs).not.toBe(atime);
    const atimeOnly = checkIndex(idx, lower);
    if ('why' in atimeOnly) throw new Error(atimeOnly.why);
    expect(atimeOnly.differences).toEqual([]);
    buildIndex(idx, lower);
    const rebuilt = bytes();
    // Changes below the root, each of a different kind; and growth at the root.
    fs.appendFileSync(path.join(lower, 'aaa-pkg/bin/tool'), '!');
    fs.chmodSync(path.join(lower, 'aaa-pkg/bin/other'), 0o700);
    fs.rmSync(path.join(lower, 'aaa-pkg/lib/deep'), { recursive: true });
    fs.writeFileSync(path.join(lower, 'bbb-pkg/added'), '');
    fs.unlinkSync(path.join(lower, 'aaa-pkg/link'));
    fs.symlinkSync('bin/other', path.join(lower, 'aaa-pkg/link'));
    fs.mkdirSync(path.join(lower, 'ccc-new'));
    const r = checkIndex(idx, lower);
    if ('why' in r) throw new Error(r.why);
    const by = new Map(r.differences.map((d) => [d.path, d]));
    expect(by.get('aaa-pkg/bin/tool')).toMatchObject({ kind: 'changed', fields: expect.arrayContaining(['size 4 -> 5', expect.stringMatching(/^mtime /)]) });
    expect(by.get('aaa-pkg/bin/other')).toMatchObject({ kind: 'changed', fields: expect.arrayContaining(['mode 100644 -> 100700']) });
    expect(by.get('aaa-pkg/lib/deep')).toEqual({ kind: 'gone', path: 'aaa-pkg/lib/deep' });
    expect(by.get('aaa-pkg/lib/deep/f')).toBeUndefined(); // below a gone directory: not listed again
    expect(by.get('bbb-pkg/added')).toEqual({ kind: 'new', path: 'bbb-pkg/added' });
    expect(by.get('aaa-pkg/link')).toMatchObject({ kind: 'changed', fields: expect.arrayContaining(["target 'bin/tool' -> 'bin/other'"]) });
    // The directories whose entries changed show it in their own times.
    expect(by.get('aaa-pkg/lib')).toMatchObject({ kind: 'changed' });
    expect(by.get('bbb-pkg')).toMatchObject({ kind: 'changed' });
    expect(by.has('ccc-new')).toBe(false);
    expect(by.has('.')).toBe(false);
    expect(r.grew).toEqual(['ccc-new']);
    expect(bytes().equals(rebuilt)).toBe(true);
    expect(fs.readdirSync(idx)).toEqual([file]); // no journal or lock file left either
    // An xattr set on a lower file is a change too.
    buildIndex(idx, lower);
    native().lsetxattr(path.join(lower, 'bbb-pkg/added'), 'user.t', Buffer.from('v'), 0);
    const x = checkIndex(idx, lower);
    if ('why' in x) throw new Error(x.why);
    expect(x.differences).toEqual([{ kind: 'changed', path: 'bbb-pkg/added', fields: [expect.stringMatching(/^ctime /), 'xattr user.t added'] }]);
    // No index at all, or one of another layer: a reason, not a walk.
    const other = path.join(base, 'other');
    fs.mkdirSync(other);
    expect(checkIndex(idx, other)).toMatchObject({ why: expect.stringMatching(/not indexed/) });
  });
});
