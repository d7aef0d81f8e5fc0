// The deferred commit of a copy-up made by open(2) (core/copyup.ts): the
// opener gets the work file at once; the fsync and the rename into place
// follow. These tests hold the fsync back to look inside that window: the
// upper has no file yet, the opener's writes land in the copy, whoever needs
// the upper state waits, and a path removed meanwhile stays removed (the
// copy is dropped).
import * as fs from 'fs';
import * as path from 'path';
import { Overlay } from '../../src/core/overlay';
import type { Loc, UpperFile } from '../../src/core/layer';
import { HostLayer, HostUpperLayer } from '../../src/layers/host';
import { native } from '../../src/native';
import { tmpdir } from '../helpers/env';

const O = fs.constants;
const caller = { uid: 0, gid: 0, pid: 1 };

/** An upper layer whose files' fsync waits until release() (and then fails, if told to). */
class GatedUpper extends HostUpperLayer {
  private unblock = (): void => undefined;
  private gate: Promise<void> = new Promise((r) => (this.unblock = r));
  fsyncError: Error | undefined;
  /** fsync calls that reached the gate. */
  waiting = 0;

  release(): void {
    this.unblock();
  }

  override async openFile(loc: Loc, flags: number, mode?: number): Promise<UpperFile> {
    const f = await super.openFile(loc, flags, mode);
    const fsync = f.fsync.bind(f);
    f.fsync = async (datasync: boolean) => {
      this.waiting++;
      await this.gate;
      if (this.fsyncError !== undefined) throw this.fsyncError;
      return fsync(datasync);
    };
    return f;
  }
}

/** Whether p is still pending after the current turn's jobs ran. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise((r) => setImmediate(r));
  return done;
}

describe('copy-up by open(2): deferred commit', () => {
  let base: string;
  let upper: GatedUpper;
  let ov: Overlay;
  const up = (p: string) => path.join(base, 'upper', p);

  beforeEach(async () => {
    base = tmpdir('lfs-commit-');
    for (const d of ['lower/d', 'upper', 'work/work']) fs.mkdirSync(path.join(base, d), { recursive: true });
    fs.writeFileSync(path.join(base, 'lower/d/f'), 'lower data');
    native().lsetxattr(path.join(base, 'lower/d/f'), 'user.k', Buffer.from('v'), 0);
    upper = new GatedUpper(path.join(base, 'upper'), path.join(base, 'work/work'));
    ov = await Overlay.open({ layers: [upper, new HostLayer(path.join(base, 'lower'))], layerNames: ['upper', 'lower1'], upper });
  });

  afterEach(async () => {
    upper.release();
    await ov.close();
    fs.rmSync(base, { recursive: true, force: true });
  });

  test('the opener writes to the copy before it is in place; the commit puts it there, synced', async () => {
    const fh = await ov.open('/d/f', O.O_WRONLY);
    // The parent is copied up at once, the file only at the commit.
    expect(fs.existsSync(up('d'))).toBe(true);
    expect(fs.existsSync(up('d/f'))).toBe(false);
    // Synced in a group a few milliseconds later, renamed only once synced.
    await new Promise((r) => setTimeout(r, 30));
    expect(upper.waiting).toBe(1);
    expect(fs.existsSync(up('d/f'))).toBe(false);
    expect(await ov.write(fh, Buffer.from('UPPER'), 5, 0)).toBe(5);
    // The kernel's security.capability check after an open for write: from the copy, no wait.
    await expect(ov.getxattr('/d/f', 'security.capability')).rejects.toMatchObject({ code: 'ENODATA' });
    expect((await ov.getxattr('/d/f', 'user.k')).toString()).toBe('v');
    const released = ov.release(fh);
    expect(await settled(released)).toBe(false); // the file is open until the commit has synced it
    upper.release();
    await released;
    expect(fs.readFileSync(up('d/f'), 'utf8')).toBe('UPPER data');
    expect(fs.readFileSync(path.join(base, 'lower/d/f'), 'utf8')).toBe('lower data');
    expect(fs.readdirSync(path.join(base, 'work/work'))).toEqual([]);
  });

  test('stat, a second open and fsync wait for the commit, and see the writes', async () => {
    const fh = await ov.open('/d/f', O.O_RDWR);
    await ov.write(fh, Buffer.from('0123456789ABC'), 13, 0);
    const stat = ov.getattr('/d/f');
    const other = ov.open('/d/f', O.O_RDONLY);
    const fsync = ov.fsync(fh, false);
    for (const p of [stat, other, fsync]) expect(await settled(p)).toBe(false);
    upper.release();
    expect((await stat).size).toBe(13);
    await fsync;
    expect(fs.readFileSync(up('d/f'), 'utf8')).toBe('0123456789ABC');
    const fh2 = await other;
    const buf = Buffer.alloc(20);
    expect(buf.subarray(0, await ov.read(fh2, buf, 20, 0)).toString()).toBe('0123456789ABC');
    await ov.release(fh2);
    await ov.release(fh);
  });

  test('a handle opened read-only before the copy-up reads the new data once it is committed', async () => {
    const ro = await ov.open('/d/f', O.O_RDONLY);
    const fh = await ov.open('/d/f', O.O_WRONLY | O.O_TRUNC);
    await ov.write(fh, Buffer.from('new'), 3, 0);
    const buf = Buffer.alloc(20);
    const read = ov.read(ro, buf, 20, 0);
    expect(await settled(read)).toBe(false);
    upper.release();
    expect(buf.subarray(0, await read).toString()).toBe('new');
    await ov.release(fh);
    await ov.release(ro);
  });

  test('unlinked while the commit is pending: the name stays gone, the copy is dropped', async () => {
    const fh = await ov.open('/d/f', O.O_WRONLY);
    await ov.unlink('/d/f');
    expect(await ov.write(fh, Buffer.from('x'), 1, 0)).toBe(1); // a file without a name, still writable
    upper.release();
    await ov.release(fh);
    await expect(ov.getattr('/d/f')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(fs.lstatSync(up('d/f')).isCharacterDevice()).toBe(true); // the whiteout
    expect(fs.readdirSync(path.join(base, 'work/work'))).toEqual([]);
  });

  test('replaced by a rename during the commit: the rename waits, then replaces the committed copy', async () => {
    const fh = await ov.open('/d/f', O.O_WRONLY);
    const { fh: g } = await ov.create('/d/g', O.O_WRONLY, 0o644, caller);
    await ov.write(g, Buffer.from('renamed'), 7, 0);
    await ov.release(g);
    await ov.write(fh, Buffer.from('gone'), 4, 0);
    const rename = ov.rename('/d/g', '/d/f', 0);
    expect(await settled(rename)).toBe(false);
    upper.release();
    await rename;
    await ov.write(fh, Buffer.from('lost'), 4, 0); // the replaced file, open, without a name
    await ov.release(fh);
    const r = await ov.open('/d/f', O.O_RDONLY);
    const buf = Buffer.alloc(20);
    expect(buf.subarray(0, await ov.read(r, buf, 20, 0)).toString()).toBe('renamed');
    await ov.release(r);
    expect(fs.readFileSync(up('d/f'), 'utf8')).toBe('renamed');
    expect(fs.readdirSync(path.join(base, 'work/work'))).toEqual([]);
  });

  test('a commit that fails leaves the lower file in view, and its handle reports EIO', async () => {
    const problems: string[] = [];
    ov.onProblem = (what) => problems.push(what);
    const fh = await ov.open('/d/f', O.O_WRONLY);
    upper.fsyncError = Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
    upper.release();
    await expect(ov.fsync(fh, false)).rejects.toMatchObject({ code: 'EIO' });
    await expect(ov.write(fh, Buffer.from('x'), 1, 0)).rejects.toMatchObject({ code: 'EIO' });
    await ov.release(fh);
    expect(problems).toEqual(["copy-up of '/d/f' (its open handle now fails with EIO)"]);
    expect(fs.existsSync(up('d/f'))).toBe(false);
    expect(fs.readdirSync(path.join(base, 'work/work'))).toEqual([]);
    // Nothing is left half done: the next open for write copies it up again.
    upper.fsyncError = undefined;
    const again = await ov.open('/d/f', O.O_WRONLY | O.O_APPEND);
    await ov.write(again, Buffer.from('!'), 1, 10);
    await ov.release(again);
    expect(fs.readFileSync(up('d/f'), 'utf8')).toBe('lower data!');
  });

  test('unmounting waits for pending commits', async () => {
    const fh = await ov.open('/d/f', O.O_WRONLY);
    await ov.write(fh, Buffer.from('L'), 1, 0);
    const closed = ov.close();
    expect(await settled(closed)).toBe(false);
    upper.release();
    await closed;
    expect(fs.readFileSync(up('d/f'), 'utf8')).toBe('Lower data');
    // close() released the handle: a later release of it finds nothing.
    await expect(ov.release(fh)).rejects.toMatchObject({ code: 'EBADF' });
  });
});
