// mkdirs: mkdir -p that returns on every path (Node 20's recursive
// mkdirSync never returns for a path under /proc).
import * as fs from 'fs';
import * as path from 'path';
import { mkdirs } from '../../src/mkdirs';
import { tmpdir } from '../helpers/env';

describe('mkdirs', () => {
  let base: string;
  beforeEach(() => {
    base = tmpdir('lfs-mkdirs-');
  });
  afterEach(() => fs.rmSync(base, { recursive: true, force: true }));

  test('makes every missing level with the mode given; an existing directory is fine', () => {
    const d = path.join(base, 'a/b/c');
    mkdirs(d, 0o700);
    expect(fs.statSync(d).isDirectory()).toBe(true);
    expect(fs.statSync(path.join(base, 'a')).mode & 0o777).toBe(0o700);
    mkdirs(d);
    mkdirs(base);
  });

  test('a file in the way, or a filesystem that refuses: an error, at once', () => {
    fs.writeFileSync(path.join(base, 'f'), '');
    expect(() => mkdirs(path.join(base, 'f'))).toThrow(/ENOTDIR/);
    expect(() => mkdirs(path.join(base, 'f/x'))).toThrow(/ENOTDIR/);
    expect(() => mkdirs('/proc/layerfs-test-nope/x')).toThrow(/ENOENT.*mkdir '\/proc\/layerfs-test-nope'/);
  });
});
