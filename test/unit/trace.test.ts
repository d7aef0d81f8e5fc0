// The trace pieces without a mount: the recorder's attribution of overlay
// decisions to requests, the filter (live glob = SQLite GLOB), the ring
// bound of the store, and the summary.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import Database from 'better-sqlite3';
import { Overlay } from '../../src/core/overlay';
import { MemoryLayer } from '../../src/layers/memory';
import { globToRegExp, matcher, toSql } from '../../src/trace/filter';
import { Recorder } from '../../src/trace/recorder';
import type { TraceRecord } from '../../src/trace/record';
import { query, summarize } from '../../src/trace/report';
import { openTraceFile, TraceStore } from '../../src/trace/store';

const rec = (over: Partial<TraceRecord>): TraceRecord => ({ ts: Date.now(), op: 'LOOKUP', path: '/a', errno: 0, durUs: 10, pid: 1, uid: 0, gid: 0, comm: 'x', ...over });

describe('trace', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lfs-trace-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('the recorder attributes resolutions, whiteouts and absences below opaque directories to the request', async () => {
    const top = new MemoryLayer('top').file('d/x').setxattr('d', 'trusted.overlay.opaque', 'y');
    const bottom = new MemoryLayer('bottom').file('d/hidden').file('only', 'b');
    bottom.whiteout('gone');
    const ov = await Overlay.open({ layers: [top, bottom], layerNames: ['lower1', 'lower2'] });
    const r = new Recorder(['lower1', 'lower2']);
    ov.trace = r;
    const got: TraceRecord[] = [];
    r.sink = (x) => got.push(x);
    const traced = async (p: string) => {
      const t = r.begin({ op: 'LOOKUP', path: p, pid: process.pid, uid: 0, gid: 0 }, Date.now());
      let errno = 0;
      await ov.getattr(p).catch(() => (errno = 2));
      r.end(t, errno, 1);
    };
    await traced('/only');
    await traced('/only');
    await traced('/d/hidden');
    await traced('/nothing');
    expect(got.map((g) => [g.path, g.layer, g.decision, g.cache, g.errno])).toEqual([
      ['/only', 'lower2', 'served by lower2', 'miss', 0],
      ['/only', 'lower2', 'served by lower2', 'hit', 0],
      ['/d/hidden', undefined, 'absent below opaque directory /d (trusted.overlay.opaque) in lower1', 'miss', 2],
      ['/nothing', undefined, 'absent in every layer', 'miss', 2],
    ]);
    expect(got[0].comm).toBe(fs.readFileSync('/proc/self/comm', 'utf8').trim());
  });

  test('path globs select the same records live and in SQL', () => {
    const paths = ['/a', '/a/b', '/a/b/c.txt', '/ab', '/x/a', '/[x]', '/a.txt', '/a?b'];
    const globs = ['/a*', '/a/*', '*.txt', '/a?', '/[ax]*', '/[^a]*', '/a/*/c*', '*'];
    const db = new Database(':memory:');
    for (const g of globs) {
      const live = paths.filter((p) => globToRegExp(g).test(p));
      const sql = paths.filter((p) => (db.prepare('SELECT ? GLOB ? AS m').get(p, g) as { m: number }).m === 1);
      expect([g, live]).toEqual([g, sql]);
    }
    const m = matcher({ ops: ['LOOKUP'], errno: 2, pid: 7 });
    expect(m(rec({ op: 'lookup', errno: 2, pid: 7 }))).toBe(true);
    expect(m(rec({ op: 'getattr', errno: 2, pid: 7 }))).toBe(false);
    expect(m(rec({ op: 'lookup', errno: 0, pid: 7 }))).toBe(false);
    expect(toSql({}).where).toBe('');
  });

  test('the store is a ring bounded by size: the oldest records go', () => {
    const file = path.join(dir, 't.sqlite');
    const store = new TraceStore(file, 256 * 1024, { mountpoint: '/m' }, (m) => {
      throw new Error(m);
    });
    for (let i = 0; i < 20000; i++) {
      store.add(rec({ path: `/dir/file-${i}`, durUs: i }));
      if (i % 1000 === 999) store.flush();
    }
    store.close();
    expect(store.written).toBe(20000);
    expect(store.dropped).toBeGreaterThan(10000);
    // Bounded: the file stays near the bound (a trim runs when it is exceeded).
    expect(fs.statSync(file).size).toBeLessThan(400 * 1024);
    const db = openTraceFile(file);
    const newest = query(db, {}, 1);
    expect(newest[0].path).toBe('/dir/file-19999');
    const s = summarize(db, file);
    expect(s.records).toBe(20000 - store.dropped);
    expect(s.meta).toEqual({ mountpoint: '/m' });
    expect(s.slowest[0].durUs).toBe(19999);
    db.close();
    expect(() => openTraceFile(path.join(dir, 'none'))).toThrow(/no such trace file/);
    fs.writeFileSync(path.join(dir, 'junk'), 'not sqlite');
    expect(() => openTraceFile(path.join(dir, 'junk'))).toThrow(/not a layerfs trace/);
  });
});
