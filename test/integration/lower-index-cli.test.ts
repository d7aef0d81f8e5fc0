// `layerfs index build` and -o lowerindex=on from the command line: the
// index is built by hand or, on first use, in the background for the next
// mount, which then serves the lower layer from it.
import * as fs from 'fs';
import * as path from 'path';
import { describeIfFuse, tmpdir } from '../helpers/env';
import { anyMountUnder, CLI, mountLayerfs, run, type Mounted } from '../helpers/mount';

describe('layerfs index', () => {
  let b: string;
  const mounts: Mounted[] = [];

  beforeAll(() => {
    b = tmpdir('lfs-index-');
    fs.mkdirSync(`${b}/lower/aaa-pkg/bin`, { recursive: true });
    fs.writeFileSync(`${b}/lower/aaa-pkg/bin/tool`, 'tool');
    fs.symlinkSync('bin/tool', `${b}/lower/aaa-pkg/link`);
    for (const d of ['up', 'work', 'mnt']) fs.mkdirSync(`${b}/${d}`);
  });
  afterAll(async () => {
    for (const m of mounts) await m.unmount();
    expect(anyMountUnder(b)).toBe(false);
    fs.rmSync(b, { recursive: true, force: true });
  });

  test('index build writes one index per lower and reports it', () => {
    const r = run(CLI, ['index', 'build', '--index-dir', `${b}/idx`, `${b}/lower`]);
    expect(r.stderr + r.stdout).toMatch(/5 entries indexed/);
    expect(r.status).toBe(0);
    expect(fs.readdirSync(`${b}/idx`).filter((f) => f.endsWith('.sqlite'))).toHaveLength(1);
  });

  test('index check: exit 0 while the index matches; each difference on a line and exit 1 once the layer changed', () => {
    const lower = `${b}/lower-check`;
    fs.mkdirSync(`${lower}/aaa-pkg/bin`, { recursive: true });
    fs.writeFileSync(`${lower}/aaa-pkg/bin/tool`, 'tool');
    const idx = `${b}/idx-check`;
    expect(run(CLI, ['index', 'build', '-q', '--index-dir', idx, lower]).status).toBe(0);
    const ok = run(CLI, ['index', 'check', '--index-dir', idx, lower]);
    expect(ok.stdout).toMatch(/lower-check: the index matches the layer \(4 entries, [\d.]+ s\)\n$/);
    expect(ok.status).toBe(0);
    fs.writeFileSync(`${lower}/aaa-pkg/bin/tool`, 'tool, longer');
    const stale = run(CLI, ['index', 'check', '--index-dir', idx, lower]);
    const lines = stale.stdout.split('\n').filter(Boolean);
    expect(lines[0]).toMatch(/^changed +aaa-pkg\/bin\/tool: size 4 -> 12, mtime \S+ -> \S+, ctime /);
    expect(lines[lines.length - 1]).toMatch(/lower-check: 1 difference\(s\) in 4 entries: the index .*\.sqlite is stale; rebuild it with 'layerfs index build .*lower-check'$/);
    expect(stale.stderr).toBe('');
    expect(stale.status).toBe(1);
    const none = run(CLI, ['index', 'check', '--index-dir', `${b}/idx-none`, lower]);
    expect(none.stderr).toMatch(/^layerfs: .*lower-check: not indexed in .*idx-none \(build it with 'layerfs index build .*'\)\n$/);
    expect(none.status).toBe(1);
  });

  test.each([
    ['no subcommand', ['index'], /index: say what to do/],
    ['check with no lower', ['index', 'check'], /Not enough non-option arguments/],
    ['check of a lower that does not exist', ['index', 'check', '--index-dir', '/tmp', '/nonexistent-lower'], /nonexistent-lower/],
    ['check with a bad --limit', ['index', 'check', '--limit', '-1', '/tmp'], /--limit needs a whole number/],
    ['no lower', ['index', 'build'], /Not enough non-option arguments/],
    ['a lower that does not exist', ['index', 'build', '--index-dir', '/tmp', '/nonexistent-lower'], /nonexistent-lower/],
    // Node's own recursive mkdir never returned for this one.
    ['an index dir that cannot be made', ['index', 'build', '--index-dir', '/proc/layerfs-nope', '/tmp'], /ENOENT.*mkdir '\/proc\/layerfs-nope'/],
  ])('%s: one line, non-zero exit', (_name, args, message) => {
    const r = run(CLI, args as string[]);
    const lines = r.stderr.split('\n').filter(Boolean);
    expect(lines).toEqual([expect.stringMatching(message)]);
    expect(r.status).not.toBe(0);
  });

  /** Waits for the daemon's stderr (-v) to say what the test expects. */
  async function said(m: Mounted, what: RegExp): Promise<string> {
    const deadline = Date.now() + 5000;
    while (!what.test(m.stderr()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return m.stderr();
  }

  describeIfFuse('mounted', () => {
    test('an unreadable index does not stop the mount: the layer is served and the index rebuilt', async () => {
      const lower = `${b}/lower-corrupt`;
      fs.mkdirSync(`${lower}/aaa-pkg`, { recursive: true });
      fs.writeFileSync(`${lower}/aaa-pkg/f`, 'f');
      const idx = `${b}/idx-corrupt`;
      expect(run(CLI, ['index', 'build', '-q', '--index-dir', idx, lower]).status).toBe(0);
      const file = path.join(idx, fs.readdirSync(idx).find((f) => f.endsWith('.sqlite'))!);
      fs.writeFileSync(file, 'garbage');
      const m = await mountLayerfs(`lowerdir=${lower},upperdir=${b}/up,workdir=${b}/work,lowerindex=on,index_dir=${idx}`, `${b}/mnt`, ['-v']);
      mounts.push(m);
      const why = /lower1: no usable index \(index .* is unreadable \(file is not a database\)\); served from the layer/;
      expect(await said(m, why)).toMatch(why);
      expect(fs.readFileSync(path.join(m.mountpoint, 'aaa-pkg/f'), 'utf8')).toBe('f');
      const deadline = Date.now() + 20000;
      while (fs.readFileSync(file).toString('latin1', 0, 15) !== 'SQLite format 3') {
        if (Date.now() > deadline) throw new Error('the index was not rebuilt within 20 s');
        await new Promise((r) => setTimeout(r, 100));
      }
      await m.unmount();
      mounts.pop();
    });

    test('first use builds the index in the background; the next mount is served from it', async () => {
      const idx = `${b}/idx-first-use`;
      const opts = `lowerdir=${b}/lower,upperdir=${b}/up,workdir=${b}/work,lowerindex=on,index_dir=${idx}`;
      const m1 = await mountLayerfs(opts, `${b}/mnt`, ['-v']);
      mounts.push(m1);
      const first = /lower1: no usable index \(not indexed\).*built in the background/;
      expect(await said(m1, first)).toMatch(first);
      expect(fs.readFileSync(path.join(m1.mountpoint, 'aaa-pkg/link'), 'utf8')).toBe('tool');
      const deadline = Date.now() + 20000;
      while (!(fs.existsSync(idx) && fs.readdirSync(idx).some((f) => f.endsWith('.sqlite')))) {
        if (Date.now() > deadline) throw new Error('no index built within 20 s');
        await new Promise((r) => setTimeout(r, 100));
      }
      await m1.unmount();
      mounts.pop();
      const m2 = await mountLayerfs(opts, `${b}/mnt`, ['-v']);
      mounts.push(m2);
      const second = /lower1: served from its index \(5 entries\)/;
      expect(await said(m2, second)).toMatch(second);
      expect(fs.readFileSync(path.join(m2.mountpoint, 'aaa-pkg/link'), 'utf8')).toBe('tool');
      expect(fs.readlinkSync(path.join(m2.mountpoint, 'aaa-pkg/link'))).toBe('bin/tool');
      expect(fs.readdirSync(m2.mountpoint)).toEqual(['aaa-pkg']);
    });
  });
});
