// The core over real temporary directories through HostLayer, with the forms
// an unprivileged user can write: .wh. files, .wh..wh..opq, user.overlay.opaque.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Overlay } from '../../src/core/overlay';
import { layerPath, mergedPath } from '../../src/core/paths';
import { HostLayer, HostUpperLayer } from '../../src/layers/host';
import { native } from '../../src/native';

describe('overlay over host directories', () => {
  let base: string;
  beforeAll(() => {
    base = fs.mkdtempSync(path.join(os.tmpdir(), 'lfs-host-'));
    const w = (p: string, data = '') => {
      fs.mkdirSync(path.dirname(path.join(base, p)), { recursive: true });
      fs.writeFileSync(path.join(base, p), data);
    };
    w('top/etc/.wh.passwd');
    w('top/usr/.wh..wh..opq');
    w('top/usr/new', 'new');
    w('top/var/x', 'top x');
    w('mid/var/y', 'mid y');
    w('mid/etc/hosts', 'mid hosts');
    w('bottom/etc/passwd', 'root');
    w('bottom/usr/old', 'old');
    w('bottom/var/z', 'bottom z');
    w('bottom/var/x', 'bottom x (hidden)');
    fs.mkdirSync(path.join(base, 'mid/opt'));
    w('bottom/opt/legacy');
    native().lsetxattr(path.join(base, 'mid/opt'), 'user.overlay.opaque', Buffer.from('y'), 0);
    fs.symlinkSync('var/x', path.join(base, 'top/link'));
  });
  afterAll(() => fs.rmSync(base, { recursive: true, force: true }));

  test('getxattr: a value, ENODATA when not set, EOPNOTSUPP where the filesystem has none, ENOENT', async () => {
    native().lsetxattr(path.join(base, 'top/var/x'), 'user.t', Buffer.from('v'), 0);
    const top = new HostLayer(path.join(base, 'top'));
    expect((await top.getxattr(layerPath(mergedPath('/var/x')), 'user.t')).toString()).toBe('v');
    await expect(top.getxattr(layerPath(mergedPath('/usr/new')), 'user.t')).rejects.toMatchObject({ code: 'ENODATA', errno: os.constants.errno.ENODATA });
    await expect(top.getxattr(layerPath(mergedPath('/nothere')), 'user.t')).rejects.toMatchObject({ code: 'ENOENT' });
    // procfs has no user.* namespace.
    await expect(new HostLayer('/proc/self').getxattr(layerPath(mergedPath('/stat')), 'user.t')).rejects.toMatchObject({ code: 'EOPNOTSUPP', errno: os.constants.errno.EOPNOTSUPP });
    native().lremovexattr(path.join(base, 'top/var/x'), 'user.t');
  });

  test('merge, .wh. whiteouts, both opaque forms, reads', async () => {
    const ov = await Overlay.open({
      layers: ['top', 'mid', 'bottom'].map((l) => new HostLayer(path.join(base, l))),
      layerNames: ['lower1', 'lower2', 'lower3'],
      
    });
    const ls = async (p: string) => (await ov.readdir(p)).map((e) => e.name).sort();
    expect(await ls('/')).toEqual(['etc', 'link', 'opt', 'usr', 'var']);
    expect(await ls('/etc')).toEqual(['hosts']);
    expect(await ls('/usr')).toEqual(['new']);
    expect(await ls('/opt')).toEqual([]);
    expect(await ls('/var')).toEqual(['x', 'y', 'z']);
    expect(await ov.readlink('/link')).toBe('var/x');
    const fh = await ov.open('/var/x', 0);
    const buf = Buffer.alloc(100);
    expect(buf.subarray(0, await ov.read(fh, buf, 100, 0)).toString()).toBe('top x');
    await ov.release(fh);
    const st = await ov.getattr('/var/z');
    // All layers on one filesystem: the real inode number passes through.
    expect(st.ino).toBe(fs.statSync(path.join(base, 'bottom/var/z'), { bigint: true }).ino);
    await expect(ov.getattr('/etc/passwd')).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('write path over host directories', () => {
  let base: string;
  beforeEach(() => {
    base = fs.mkdtempSync(path.join(os.tmpdir(), 'lfs-hostw-'));
    for (const d of ['lower', 'upper', 'work/work']) fs.mkdirSync(path.join(base, d), { recursive: true });
    fs.writeFileSync(path.join(base, 'lower/f'), 'twelve bytes');
  });
  afterEach(() => fs.rmSync(base, { recursive: true, force: true }));

  async function open(): Promise<Overlay> {
    const upper = new HostUpperLayer(path.join(base, 'upper'), path.join(base, 'work/work'));
    return Overlay.open({ layers: [upper, new HostLayer(path.join(base, 'lower'))], layerNames: ['upper', 'lower1'], upper });
  }

  test('open with O_TRUNC (even read-only) copies up, truncates, and stat shows it at once', async () => {
    const ov = await open();
    expect((await ov.getattr('/f')).size).toBe(12); // cached before the open
    const fh = await ov.open('/f', fs.constants.O_RDONLY | fs.constants.O_TRUNC);
    expect((await ov.getattr('/f')).size).toBe(0);
    expect(fs.statSync(path.join(base, 'upper/f')).size).toBe(0);
    expect(fs.readFileSync(path.join(base, 'lower/f'), 'utf8')).toBe('twelve bytes');
    await ov.release(fh);
    await ov.close();
  });

  test('copy-up keeps size, contents and holes: a hole in the middle, one at the end, none', async () => {
    const lower = (n: string) => path.join(base, 'lower', n);
    const mib = 1 << 20;
    const data = Buffer.alloc(mib, 7);
    for (const [name, layout] of [['mid', [0, 3 * mib]], ['end', [0]], ['dense', [0, mib]]] as const) {
      const fd = fs.openSync(lower(name), 'w');
      for (const at of layout) fs.writeSync(fd, data, 0, data.length, at);
      fs.closeSync(fd);
      if (name === 'end') fs.truncateSync(lower(name), 5 * mib); // hole from 1 MiB to 5 MiB
    }
    const ov = await open();
    for (const name of ['mid', 'end', 'dense']) {
      await ov.setattr(`/${name}`, { mode: 0o600 }); // a metadata change copies the data up
      const up = path.join(base, 'upper', name);
      const st = fs.statSync(up);
      expect(st.size).toBe(fs.statSync(lower(name)).size);
      expect(fs.readFileSync(up).equals(fs.readFileSync(lower(name)))).toBe(true);
      expect(st.blocks * 512).toBeLessThanOrEqual(fs.statSync(lower(name)).blocks * 512 + 64 * 1024);
    }
    expect(fs.statSync(path.join(base, 'upper/end')).blocks * 512).toBeLessThan(2 * mib); // 1 MiB of data in 5
    await ov.close();
  });
});

describe('directory emptiness for rmdir and rename-over', () => {
  let base: string;
  const xattr = (p: string, name: string, value: string) => native().lsetxattr(path.join(base, p), name, Buffer.from(value), 0);
  beforeEach(() => {
    base = fs.mkdtempSync(path.join(os.tmpdir(), 'lfs-empty-'));
    for (const d of ['lower/d', 'upper/pure', 'upper/origin', 'upper/origin2', 'upper/src', 'work/work']) fs.mkdirSync(path.join(base, d), { recursive: true });
    // lower/d lists as empty: its only entry is an xattr whiteout.
    xattr('lower/d', 'user.overlay.opaque', 'x');
    fs.writeFileSync(path.join(base, 'lower/d/gone'), '');
    xattr('lower/d/gone', 'user.overlay.whiteout', '');
    // Upper-only directories holding a stale whiteout, without and with an origin.
    fs.writeFileSync(path.join(base, 'upper/pure/.wh.stale'), '');
    for (const o of ['origin', 'origin2']) {
      fs.writeFileSync(path.join(base, `upper/${o}/.wh.stale`), '');
      xattr(`upper/${o}`, 'user.overlay.origin', 'fh');
    }
    fs.writeFileSync(path.join(base, 'lower/f'), 'x');
  });
  afterEach(() => fs.rmSync(base, { recursive: true, force: true }));

  async function open(): Promise<Overlay> {
    const upper = new HostUpperLayer(path.join(base, 'upper'), path.join(base, 'work/work'));
    return Overlay.open({ layers: [upper, new HostLayer(path.join(base, 'lower'))], layerNames: ['upper', 'lower1'], upper });
  }

  test('a directory emptied by a lower xattr whiteout is empty (the kernel says ENOTEMPTY here)', async () => {
    const ov = await open();
    expect(await ov.readdir('/d')).toEqual([]);
    await ov.rmdir('/d');
    await expect(ov.getattr('/d')).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await ov.readdir('/')).map((e) => e.name).sort()).toEqual(['f', 'origin', 'origin2', 'pure', 'src']);
    await ov.close();
  });

  test('a pure-upper directory holding a stale whiteout is not empty, as in the kernel', async () => {
    const ov = await open();
    expect(await ov.readdir('/pure')).toEqual([]);
    await expect(ov.rmdir('/pure')).rejects.toMatchObject({ code: 'ENOTEMPTY' });
    await expect(ov.rename('/src', '/pure', 0)).rejects.toMatchObject({ code: 'ENOTEMPTY' });
    // The kernel marks a directory moving into a merged one opaque before the
    // upper rename, and keeps the mark when that rename fails.
    const marks = native().llistxattr(path.join(base, 'upper/src')).filter((n: string) => n.endsWith('.overlay.opaque'));
    expect(marks.map((n: string) => native().lgetxattr(path.join(base, 'upper/src'), n).toString())).toEqual(['y']);
    expect(fs.readdirSync(path.join(base, 'upper/pure'))).toEqual(['.wh.stale']);
    await ov.close();
  });

  test('an upper directory with an origin may hold whiteouts: they go with it', async () => {
    const ov = await open();
    await ov.rename('/src', '/origin', 0);
    expect(fs.readdirSync(path.join(base, 'upper/origin'))).toEqual([]);
    await ov.rmdir('/origin2');
    expect(fs.existsSync(path.join(base, 'upper/origin2'))).toBe(false);
    await ov.close();
  });
});

describe('whiteout fallback where mknod is refused', () => {
  let base: string;
  /** An upper filesystem that refuses device nodes, as for an unprivileged daemon. */
  class NoDevUpper extends HostUpperLayer {
    override async mknod(loc: Parameters<HostUpperLayer['mknod']>[0], mode: number, rdev: number): Promise<void> {
      if ((mode & 0o170000) === 0o020000) throw Object.assign(new Error('mknod: EPERM'), { code: 'EPERM' });
      return super.mknod(loc, mode, rdev);
    }
  }
  beforeEach(() => {
    base = fs.mkdtempSync(path.join(os.tmpdir(), 'lfs-nodev-'));
    for (const d of ['lower/d', 'upper', 'work/work']) fs.mkdirSync(path.join(base, d), { recursive: true });
    fs.writeFileSync(path.join(base, 'lower/d/f'), 'f');
    fs.writeFileSync(path.join(base, 'lower/d/g'), 'g');
  });
  afterEach(() => fs.rmSync(base, { recursive: true, force: true }));

  async function open(): Promise<Overlay> {
    const upper = new NoDevUpper(path.join(base, 'upper'), path.join(base, 'work/work'));
    return Overlay.open({ layers: [upper, new HostLayer(path.join(base, 'lower'))], layerNames: ['upper', 'lower1'], upper });
  }

  test('the probe picks the xattr form, and a fresh mount reads it back', async () => {
    const ov = await open();
    expect(ov.markerConfig?.whiteout).toBe('xattr');
    await ov.unlink('/d/f');
    await ov.rename('/d/g', '/d/h', 0);
    const ls = async (o: Overlay) => (await o.readdir('/d')).map((e) => e.name).sort();
    expect(await ls(ov)).toEqual(['h']);
    await ov.close();
    // On disk: zero-size files with <ns>.overlay.whiteout in a directory marked opaque=x.
    const ns = native().llistxattr(path.join(base, 'upper/d')).find((n: string) => n.endsWith('.overlay.opaque'))!;
    expect(native().lgetxattr(path.join(base, 'upper/d'), ns).toString()).toBe('x');
    for (const w of ['f', 'g']) {
      expect(fs.statSync(path.join(base, 'upper/d', w)).size).toBe(0);
      expect(native().llistxattr(path.join(base, 'upper/d', w))).toContain(ns.replace('opaque', 'whiteout'));
    }
    const again = await open();
    expect(await ls(again)).toEqual(['h']);
    await expect(again.getattr('/d/f')).rejects.toMatchObject({ code: 'ENOENT' });
    await again.close();
  });
});

describe('a failed operation copies nothing up', () => {
  let base: string;
  beforeEach(() => {
    base = fs.mkdtempSync(path.join(os.tmpdir(), 'lfs-nocopy-'));
    for (const d of ['lower/a/dir/sub', 'lower/a/full/x', 'upper/u', 'work/work']) fs.mkdirSync(path.join(base, d), { recursive: true });
    fs.writeFileSync(path.join(base, 'lower/a/file'), 'f');
  });
  afterEach(() => fs.rmSync(base, { recursive: true, force: true }));

  async function open(): Promise<Overlay> {
    const upper = new HostUpperLayer(path.join(base, 'upper'), path.join(base, 'work/work'));
    return Overlay.open({ layers: [upper, new HostLayer(path.join(base, 'lower'))], layerNames: ['upper', 'lower1'], upper });
  }

  test('rename: EXDEV and ENOTEMPTY come before the copy-up of parents and source (as in the kernel)', async () => {
    const ov = await open();
    await expect(ov.rename('/a/dir', '/a/moved', 0)).rejects.toMatchObject({ code: 'EXDEV' });
    await expect(ov.rename('/a/file', '/a/dir', 2)).rejects.toMatchObject({ code: 'EXDEV' });
    await expect(ov.rename('/u', '/a/full', 0)).rejects.toMatchObject({ code: 'ENOTEMPTY' });
    await expect(ov.rename('/a/file', '/a/dir', 0)).rejects.toMatchObject({ code: 'EISDIR' });
    expect(fs.readdirSync(path.join(base, 'upper'))).toEqual(['u']);
    // And one that succeeds copies up the parent once, then moves the file.
    await ov.rename('/a/file', '/a/renamed', 0);
    expect(fs.readdirSync(path.join(base, 'upper/a')).sort()).toEqual(['file', 'renamed']);
    await ov.close();
  });
});

describe('system calls on lower layers', () => {
  let base: string;
  beforeEach(() => {
    base = fs.mkdtempSync(path.join(os.tmpdir(), 'lfs-calls-'));
    for (const d of ['l1/usr/bin', 'l2/usr/lib', 'upper', 'work/work']) fs.mkdirSync(path.join(base, d), { recursive: true });
    fs.writeFileSync(path.join(base, 'l1/usr/bin/sh'), 'sh');
    fs.writeFileSync(path.join(base, 'l2/usr/lib/libc'), 'libc');
  });
  afterEach(() => fs.rmSync(base, { recursive: true, force: true }));

  test('are counted per layer; a repeated lookup makes none until something changes', async () => {
    const l1 = new HostLayer(path.join(base, 'l1'));
    const l2 = new HostLayer(path.join(base, 'l2'));
    const upper = new HostUpperLayer(path.join(base, 'upper'), path.join(base, 'work/work'));
    const ov = await Overlay.open({ layers: [upper, l1, l2], layerNames: ['upper', 'lower1', 'lower2'], upper });
    const lower = () => l1.calls.total + l2.calls.total;
    await ov.getattr('/usr/bin/sh');
    await expect(ov.getattr('/usr/nothere')).rejects.toMatchObject({ code: 'ENOENT' });
    const cold = lower();
    expect(cold).toBeGreaterThan(0);
    expect(l1.calls.snapshot().lstat).toBeGreaterThan(0);
    await ov.getattr('/usr/bin/sh');
    await expect(ov.getattr('/usr/nothere')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(lower()).toBe(cold);
    // mkdir in /usr copies /usr up, which changes nothing below it: still cached.
    const caller = { uid: 0, gid: 0, pid: process.pid };
    await ov.mkdir('/usr/new', 0o755, caller);
    const copied = lower();
    await ov.getattr('/usr/bin/sh');
    await ov.getattr('/usr');
    expect(lower()).toBe(copied);
    // A name that changed through the overlay is looked up again, down to the lowers.
    await ov.mkdir('/usr/nothere', 0o755, caller);
    await ov.rmdir('/usr/nothere');
    const after = lower();
    await expect(ov.getattr('/usr/nothere')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(lower()).toBeGreaterThan(after);
    await ov.close();
  });
});
