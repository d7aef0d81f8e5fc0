// A real layerfs mount, read-only: what processes see through the kernel.
import * as fs from 'fs';
import { native } from '../../src/native';
import { writeDistinctFiles } from '../helpers/data';
import { describeIfFuse, tmpdir } from '../helpers/env';
import { anyMountUnder, daemonStats, mountLayerfs, run, type Mounted } from '../helpers/mount';

describeIfFuse('read path through a real mount', () => {
  let base: string;
  let m: Mounted;

  beforeAll(async () => {
    base = tmpdir('lfs-read-');
    for (const d of ['l1/dir', 'l2/dir/sub', 'l2/gone', 'mnt']) fs.mkdirSync(`${base}/${d}`, { recursive: true });
    fs.writeFileSync(`${base}/l1/dir/a`, 'top a');
    fs.writeFileSync(`${base}/l2/dir/a`, 'bottom a, longer');
    fs.writeFileSync(`${base}/l2/dir/b`, 'b'.repeat(300000));
    fs.writeFileSync(`${base}/l2/dir/sub/c`, 'c');
    fs.symlinkSync('dir/a', `${base}/l1/link`);
    native().mknod(`${base}/l1/gone`, 0o020000, 0, 0);
    fs.writeFileSync(`${base}/l1/file`, 'x');
    native().lsetxattr(`${base}/l1/file`, 'user.visible', Buffer.from('yes'), 0);
    native().lsetxattr(`${base}/l1/file`, 'trusted.overlay.origin', Buffer.from('private'), 0);
    m = await mountLayerfs(`lowerdir=${base}/l1:${base}/l2`, `${base}/mnt`);
  });

  afterAll(async () => {
    await m?.unmount();
    expect(anyMountUnder(base)).toBe(false);
    fs.rmSync(base, { recursive: true, force: true });
  });

  test('merged listing, contents, symlinks', () => {
    expect(fs.readdirSync(m.mountpoint).sort()).toEqual(['dir', 'file', 'link']);
    expect(fs.readdirSync(`${m.mountpoint}/dir`).sort()).toEqual(['a', 'b', 'sub']);
    expect(fs.readFileSync(`${m.mountpoint}/dir/a`, 'utf8')).toBe('top a');
    expect(fs.readFileSync(`${m.mountpoint}/dir/b`).length).toBe(300000);
    expect(fs.readlinkSync(`${m.mountpoint}/link`)).toBe('dir/a');
    expect(fs.readFileSync(`${m.mountpoint}/link`, 'utf8')).toBe('top a');
    expect(fs.existsSync(`${m.mountpoint}/gone`)).toBe(false);
  });

  test('ls -la lists . and .. and readdir types work for find -type', () => {
    const r = run('ls', ['-a', m.mountpoint]);
    expect(r.stdout.split('\n').filter(Boolean)).toEqual(['.', '..', 'dir', 'file', 'link']);
    const f = run('find', [m.mountpoint, '-type', 'f']);
    expect(f.stdout.split('\n').filter(Boolean).map((p) => p.slice(m.mountpoint.length)).sort()).toEqual([
      '/dir/a', '/dir/b', '/dir/sub/c', '/file',
    ]);
  });

  test('st_ino is the real inode and stays stable after the kernel forgets the inode', () => {
    const before = fs.statSync(`${m.mountpoint}/dir/sub/c`).ino;
    expect(before).toBe(fs.statSync(`${base}/l2/dir/sub/c`).ino);
    fs.writeFileSync('/proc/sys/vm/drop_caches', '2');
    expect(fs.statSync(`${m.mountpoint}/dir/sub/c`).ino).toBe(before);
    expect(fs.statSync(`${m.mountpoint}/dir`).nlink).toBe(1); // merged directory
  });

  test('user xattrs pass through; overlay-private ones are invisible', () => {
    const names = native().llistxattr(`${m.mountpoint}/file`);
    expect(names).toContain('user.visible');
    expect(names.some((n) => n.startsWith('trusted.overlay.'))).toBe(false);
    expect(native().lgetxattr(`${m.mountpoint}/file`, 'user.visible').toString()).toBe('yes');
    expect(() => native().lgetxattr(`${m.mountpoint}/file`, 'trusted.overlay.origin')).toThrow(/ENODATA/);
  });

  test('statfs answers', () => {
    const s = fs.statfsSync(m.mountpoint);
    expect(s.blocks).toBeGreaterThan(0);
  });

  test('every write operation answers EROFS, none ENOSYS or EPERM', () => {
    const mp = m.mountpoint;
    const attempts: [string, () => void][] = [
      ['create', () => fs.writeFileSync(`${mp}/new`, 'x')],
      ['open O_WRONLY', () => fs.closeSync(fs.openSync(`${mp}/dir/a`, 'r+'))],
      ['truncate', () => fs.truncateSync(`${mp}/dir/a`, 0)],
      ['mkdir', () => fs.mkdirSync(`${mp}/newdir`)],
      ['rmdir', () => fs.rmdirSync(`${mp}/dir/sub`)],
      ['unlink', () => fs.unlinkSync(`${mp}/dir/a`)],
      ['rename', () => fs.renameSync(`${mp}/dir/a`, `${mp}/dir/z`)],
      ['link', () => fs.linkSync(`${mp}/dir/a`, `${mp}/dir/hard`)],
      ['symlink', () => fs.symlinkSync('t', `${mp}/sl`)],
      ['chmod', () => fs.chmodSync(`${mp}/dir/a`, 0o600)],
      ['chown', () => fs.chownSync(`${mp}/dir/a`, 1, 1)],
      ['utimes', () => fs.utimesSync(`${mp}/dir/a`, 1, 1)],
      ['mknod', () => native().mknod(`${mp}/fifo`, 0o010644, 0, 0)],
      ['setxattr', () => native().lsetxattr(`${mp}/file`, 'user.x', Buffer.from('1'), 0)],
      ['removexattr', () => native().lremovexattr(`${mp}/file`, 'user.visible')],
    ];
    const results = attempts.map(([op, fn]) => {
      try {
        fn();
        return `${op}: succeeded`;
      } catch (err) {
        return `${op}: ${(err as { code: string }).code}`;
      }
    });
    expect(results).toEqual(attempts.map(([op]) => `${op}: EROFS`));
    expect(fs.readdirSync(`${base}/l1`).sort()).toEqual(['dir', 'file', 'gone', 'link']);
  });

  test('ls -l of a big directory: entries and attributes come with the listing (READDIRPLUS), not one LOOKUP each', async () => {
    const dir = `${base}/big-lower`;
    fs.mkdirSync(`${dir}/many`, { recursive: true });
    for (let i = 0; i < 200; i++) fs.writeFileSync(`${dir}/many/f${i}`, 'x'.repeat(i));
    fs.symlinkSync('many/f1', `${dir}/link`);
    fs.mkdirSync(`${base}/big-mnt`);
    const stats = `${base}/stats.json`;
    const big = await mountLayerfs(`lowerdir=${dir}`, `${base}/big-mnt`, [], { LAYERFS_STATS_FILE: stats });
    try {
      const list = (root: string) => run('ls', ['-ln', '--time-style=+%s', `${root}/many`]).stdout;
      expect(list(big.mountpoint)).toBe(list(dir));
      const byOp = (await daemonStats(big, stats)).byOp as Record<string, number>;
      expect(byOp.readdirplus).toBeGreaterThan(0);
      expect(byOp.lookup ?? 0).toBeLessThan(20); // 200 without READDIRPLUS
      // Symlink targets are cached by the kernel: one READLINK however often read.
      for (let i = 0; i < 3; i++) expect(fs.readlinkSync(`${big.mountpoint}/link`)).toBe('many/f1');
      expect((await daemonStats(big, stats)).byOp).toMatchObject({ readlink: 1 });
    } finally {
      await big.unmount();
    }
  });

  test('a sequential read arrives as 1 MiB READs (read-ahead of the mount raised); readahead_kb=0 keeps the kernel 128 KiB', async () => {
    const dir = `${base}/ra-lower`;
    fs.mkdirSync(dir);
    const data = Buffer.alloc(8 << 20);
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
    fs.writeFileSync(`${dir}/big`, data);
    const reads: Record<string, number> = {};
    for (const [name, opt] of [['raised', ''], ['kernel', ',readahead_kb=0']]) {
      fs.mkdirSync(`${base}/ra-${name}`);
      const stats = `${base}/ra-${name}.json`;
      const mnt = await mountLayerfs(`lowerdir=${dir}${opt}`, `${base}/ra-${name}`, [], { LAYERFS_STATS_FILE: stats });
      try {
        const dev = run('mountpoint', ['-d', mnt.mountpoint]).stdout.trim();
        const ra = fs.readFileSync(`/sys/class/bdi/${dev}/read_ahead_kb`, 'utf8').trim();
        if (name === 'raised') expect(ra).toBe('1024');
        else expect(ra).not.toBe('1024'); // the kernel's own (128 here)
        expect(run('sh', ['-c', `dd if=${mnt.mountpoint}/big bs=1M 2>/dev/null | sha256sum`]).stdout).toBe(run('sh', ['-c', `sha256sum < ${dir}/big`]).stdout);
        reads[name] = ((await daemonStats(mnt, stats)).byOp as Record<string, number>).read;
      } finally {
        await mnt.unmount();
      }
    }
    expect(reads.raised).toBeLessThanOrEqual(10); // 8 of 1 MiB (and a few more at most)
    expect(reads.kernel).toBeGreaterThanOrEqual(4 * reads.raised); // 64 of 128 KiB here
  });

  test('large reads of many files at once each get their own data (READ buffers are reused)', async () => {
    // More readers than the session keeps READ buffers (4), every one with
    // different bytes: a buffer given back before its reply was written, or
    // handed to two reads at once, shows up as a wrong checksum.
    const dir = `${base}/par-lower`;
    fs.mkdirSync(dir);
    const want = writeDistinctFiles(dir, 'f', 8);
    fs.mkdirSync(`${base}/par-mnt`);
    const mnt = await mountLayerfs(`lowerdir=${dir}`, `${base}/par-mnt`);
    try {
      const script = want.map((_, f) => `(sha256sum < ${mnt.mountpoint}/f${f} > ${base}/par-${f}.sum) &`).join(' ') + ' wait';
      run('sh', ['-c', script]);
      want.forEach((w, f) => expect(fs.readFileSync(`${base}/par-${f}.sum`, 'utf8')).toBe(`${w}  -\n`));
    } finally {
      await mnt.unmount();
    }
  });
});
