// FUSE passthrough of upper files (fuse/passthrough.ts): root's opens of
// upper files are read and written by the kernel itself. What must hold:
// no READ or WRITE reaches the daemon for them, stat right after a write
// shows it, mixed opens of one file never fail (the kernel refuses an open
// whose mode differs from the files already open on the inode, with EIO),
// set-id files and other users' first opens stay with the daemon, and
// `nopassthrough` turns it off.
import * as fs from 'fs';
import * as path from 'path';
import { sha256Of, writeDistinctFiles } from '../helpers/data';
import { describeIfFuse, tmpdir } from '../helpers/env';
import { anyMountUnder, daemonStats, mountLayerfs, run, type Mounted } from '../helpers/mount';

const NOBODY = 65534;

describeIfFuse('passthrough of upper files', () => {
  let base: string;
  let m: Mounted | undefined;
  const stats = () => daemonStats(m!, path.join(base, 'stats.json'));
  const sh = (script: string) => run('sh', ['-c', `cd '${m!.mountpoint}' && { ${script}; }`]);

  async function mount(extra = ''): Promise<void> {
    for (const d of ['lower', 'upper', 'work', 'mnt']) fs.mkdirSync(path.join(base, d), { recursive: true });
    fs.writeFileSync(path.join(base, 'lower/low'), 'lower data\n');
    m = await mountLayerfs(`lowerdir=${base}/lower,upperdir=${base}/upper,workdir=${base}/work${extra}`, path.join(base, 'mnt'), [], {
      LAYERFS_STATS_FILE: path.join(base, 'stats.json'),
    });
  }

  beforeEach(() => {
    base = tmpdir('lfs-pt-');
  });

  afterEach(async () => {
    await m?.unmount();
    m = undefined;
    expect(anyMountUnder(base)).toBe(false);
    fs.rmSync(base, { recursive: true, force: true });
  });

  test("root's reads and writes of upper files bypass the daemon; stat sees every write at once", async () => {
    await mount();
    const r = sh(
      [
        'printf 0123456789 > new', // create
        'stat -c %s new',
        'printf abc >> new; stat -c %s new', // open for append, then stat: the size the kernel wrote
        'cat new; echo',
        'printf xyz >> low; stat -c %s low; cat low', // a copy-up, then the copy passed through
        'dd if=/dev/zero of=new bs=4096 seek=2 count=1 conv=notrunc 2>/dev/null; stat -c %s new',
      ].join('; '),
    );
    expect(r.stdout).toBe('10\n13\n0123456789abc\n14\nlower data\nxyz12288\n');
    const s = await stats();
    expect(s.passthrough).toBeGreaterThanOrEqual(5);
    expect(s.byOp.write ?? 0).toBe(0);
    expect(s.byOp.read ?? 0).toBe(0);
    expect(fs.readFileSync(path.join(base, 'upper/low'), 'utf8')).toBe('lower data\nxyz');
  });

  test('open modes never clash: a file open through the daemon keeps later opens there, and the reverse', async () => {
    await mount();
    fs.writeFileSync(path.join(base, 'upper/shared'), 'u\n');
    fs.chmodSync(path.join(base, 'upper/shared'), 0o666);
    const r = sh(
      [
        // nobody opens first (through the daemon), root appends while it is open
        `setpriv --reuid=${NOBODY} --regid=${NOBODY} --clear-groups sh -c 'exec 3< shared; sleep 0.5; cat <&3' & sleep 0.2; echo root >> shared; wait`,
        // root opens first (passthrough), nobody appends while it is open
        `sh -c 'exec 3< shared; sleep 0.5; cat <&3' & sleep 0.2; setpriv --reuid=${NOBODY} --regid=${NOBODY} --clear-groups sh -c 'echo nobody >> shared'; wait`,
        // a lower file open read-only (through the daemon) while root's write copies it up
        `sh -c 'exec 3< low; sleep 0.5; cat <&3' & sleep 0.2; echo more >> low; wait`,
      ].join('; '),
    );
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('u\nroot\nu\nroot\nnobody\nlower data\nmore\n');
  });

  test('set-id files stay with the daemon, which clears the bits on a write by another user', async () => {
    await mount();
    fs.writeFileSync(path.join(base, 'upper/suid'), 's\n');
    fs.chmodSync(path.join(base, 'upper/suid'), 0o4777);
    const r = sh(`cat suid; setpriv --reuid=${NOBODY} --regid=${NOBODY} --clear-groups sh -c 'echo x >> suid'; stat -c %a suid`);
    expect(r.stdout).toBe('s\n777\n');
    const s = await stats();
    expect(s.byOp.read).toBeGreaterThan(0);
    expect(s.byOp.write).toBeGreaterThan(0);
  });

  test('nopassthrough: every read and write goes through the daemon', async () => {
    await mount(',nopassthrough');
    expect(sh('printf abc > f; cat f; echo more >> f; cat f').stdout).toBe('abcabcmore\n');
    const s = await stats();
    expect(s.passthrough).toBe(0);
    expect(s.byOp.write).toBeGreaterThan(0);
    expect(s.byOp.read).toBeGreaterThan(0);
    expect(run('node', [path.join(__dirname, '..', '..', 'bin', 'layerfs'), 'status', m!.mountpoint]).stdout).toContain('passthrough: off (nopassthrough)');
  });

  test('nopassthrough: large writes of many files at once each land whole (WRITE buffers are reused)', async () => {
    // More writers than the session keeps WRITE buffers (4), 1 MiB writes of
    // different bytes: a buffer given back or refilled while its write was
    // still going shows up as a wrong checksum.
    await mount(',nopassthrough');
    const want = writeDistinctFiles(base, 'src-', 8);
    sh(want.map((_, f) => `dd if=${base}/src-${f} of=w${f} bs=1M 2>/dev/null &`).join(' ') + ' wait');
    want.forEach((w, f) => expect(sha256Of(`${base}/upper/w${f}`)).toBe(w));
    expect((await stats()).byOp.write).toBeGreaterThanOrEqual(8 * 3);
  });
});
