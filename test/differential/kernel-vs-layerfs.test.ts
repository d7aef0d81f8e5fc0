// Differential test: the same lower stacks mounted by kernel overlayfs (the
// oracle) and by layerfs must show identical merged trees: names, types, modes,
// owners, sizes, link counts, symlink targets, contents, user xattrs; and, over
// the very same directories, inode numbers and mtimes too.
import * as fs from 'fs';
import { describeIfKernelOverlay, tmpdir } from '../helpers/env';
import { anyMountUnder, mountKernelOverlay, mountLayerfs, type Mounted } from '../helpers/mount';
import { kernelForms, mixedForms, randomStack, snapshot, writeStack, type LayerSpec, type SnapshotOptions } from '../helpers/stack';

/** A hand-written stack of four lower layers using every whiteout and opaque form. */
const everyForm: LayerSpec[] = [
  {
    'etc/hosts': { t: 'f', data: 'top hosts\n', mode: 0o644 },
    'etc/gone-chardev': { t: 'w' },
    'usr/bin/tool': { t: 'f', data: '#!/bin/sh\necho new\n', mode: 0o755, uid: 1000, gid: 1000 },
    'usr/share/doc': { t: 'd', opaque: true },
    'usr/share/doc/README': { t: 'f', data: 'only this' },
    'var/log': { t: 'w' },
    'home/user': { t: 'd', mode: 0o700, uid: 1000, gid: 100, x: { 'user.comment': 'home' } },
    'home/user/.profile': { t: 'f', data: 'export A=1\n', x: { 'user.mime': 'text/plain' } },
    'link-to-hosts': { t: 'l', target: 'etc/hosts' },
    'replaced-dir': { t: 'f', data: 'a file where lower layers have a directory' },
  },
  {
    'etc/hosts': { t: 'f', data: 'middle hosts\n' },
    'etc/passwd': { t: 'f', data: 'root:x:0:0\n', mode: 0o600 },
    'etc/whiteout-here': { t: 'w' },
    'usr/share/doc/old': { t: 'f', data: 'hidden by opaque above' },
    'usr/lib': { t: 'd', opaque: true },
    'usr/lib/libnew.so': { t: 'f', data: 'ELF new' },
    'opt': { t: 'd', opaque: true },
    'opt/app/run': { t: 'p' },
    'replaced-dir/x': { t: 'f', data: 'hidden by file above' },
  },
  {
    'etc/gone-chardev': { t: 'f', data: 'deleted in top' },
    'etc/whiteout-here': { t: 'f', data: 'deleted in middle' },
    'etc/group': { t: 'f', data: 'root:x:0:\n' },
    'usr/lib/libold.so': { t: 'f', data: 'ELF old, hidden by opaque' },
    'usr/share/man/man1/tool.1': { t: 'f', data: '.TH TOOL 1' },
    'var/log/messages': { t: 'f', data: 'hidden by whiteout of var/log' },
    'opt/legacy': { t: 'f', data: 'hidden by opaque opt' },
    'srv/data': { t: 'd', mode: 0o1777 },
    'srv/data/blob': { t: 'f', data: 'x'.repeat(100000), uid: 65534, gid: 65534 },
  },
  {
    'etc/hosts': { t: 'f', data: 'bottom hosts\n' },
    'etc/shadow': { t: 'w' },
    'bin/sh': { t: 'l', target: '/bin/dash' },
    'lib/x': { t: 'f', data: 'bottom lib' },
    'var/tmp/keep': { t: 'f', data: 'kept' },
    'usr/share/doc/bottom': { t: 'f', data: 'hidden by opaque' },
  },
];

describeIfKernelOverlay('kernel overlayfs vs layerfs, read-only lower stacks', () => {
  let base: string;
  const mounts: Mounted[] = [];

  beforeEach(() => {
    base = tmpdir('lfs-diff-');
  });
  afterEach(async () => {
    for (const m of mounts.splice(0)) await m.unmount();
    expect(anyMountUnder(base)).toBe(false);
    fs.rmSync(base, { recursive: true, force: true });
  });

  async function compare(layers: LayerSpec[], name: string): Promise<number> {
    const kdirs = writeStack(`${base}/kernel-form`, layers, kernelForms);
    const mdirs = writeStack(`${base}/mixed-form`, layers, mixedForms);
    for (const d of ['k', 'lk', 'lm']) fs.mkdirSync(`${base}/${d}`);
    mounts.push(mountKernelOverlay(`lowerdir=${kdirs.join(':')}`, `${base}/k`));
    mounts.push(await mountLayerfs(`lowerdir=${kdirs.join(':')}`, `${base}/lk`));
    mounts.push(await mountLayerfs(`lowerdir=${mdirs.join(':')}`, `${base}/lm`));
    // Same directories: everything, inode numbers and mtimes included.
    const exact: SnapshotOptions = { ino: true, mtime: true, dirSize: true };
    const oracle = snapshot(`${base}/k`, exact);
    const sameDirs = snapshot(`${base}/lk`, exact);
    expect(sameDirs.tree).toEqual(oracle.tree);
    // Other forms on disk, same meaning: compare what does not depend on the copy.
    const oracleLoose = snapshot(`${base}/k`);
    const mixed = snapshot(`${base}/lm`);
    expect(mixed.tree).toEqual(oracleLoose.tree);
    // layerfs never lists a name it cannot look up (the kernel does, see stack.ts).
    expect(sameDirs.dangling).toEqual([]);
    expect(mixed.dangling).toEqual([]);
    const n = Object.keys(oracle.tree).length;
    // eslint-disable-next-line no-console
    console.log(
      `${name}: ${layers.length} layers, ${n} merged entries, 0 differences (kernel form and mixed forms)` +
        (oracle.dangling.length ? `; kernel also listed ${oracle.dangling.length} whiteout(s) it cannot look up: ${oracle.dangling.join(', ')}` : ''),
    );
    return n;
  }

  test('a hand-written four-layer stack with every whiteout and opaque form', async () => {
    const n = await compare(everyForm, 'every-form stack');
    expect(n).toBeGreaterThan(20);
  });

  test.each([1, 2, 3, 4, 5, 6])('random four-layer stack, seed %i', async (seed) => {
    const n = await compare(randomStack(seed, 4), `random stack seed ${seed}`);
    expect(n).toBeGreaterThan(5);
  });
});
