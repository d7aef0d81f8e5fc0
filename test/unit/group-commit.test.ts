// Group commit of deferred copy-ups (core/group-commit.ts): copies queued
// together are synced together, each renamed only after its own sync, a
// failure stays with its copy, and urge() flushes without waiting.
import { GroupCommit, type Deferred } from '../../src/core/group-commit';

/** A job that logs what happens to it; sync fails when told to. */
function job(name: string, log: string[], syncError?: Error): Deferred & { failure?: unknown } {
  const j: Deferred & { failure?: unknown } = {
    sync: async () => {
      log.push(`sync ${name}`);
      await new Promise((r) => setImmediate(r));
      if (syncError !== undefined) throw syncError;
      log.push(`synced ${name}`);
    },
    commit: async () => {
      log.push(`commit ${name}`);
    },
    failed: (err) => {
      j.failure = err;
      log.push(`failed ${name}`);
    },
  };
  return j;
}

describe('group commit', () => {
  test('copies queued within the delay are synced together, then each committed', async () => {
    const log: string[] = [];
    const g = new GroupCommit(20, 64);
    const done = ['a', 'b', 'c'].map((n) => g.add(job(n, log)));
    await new Promise((r) => setTimeout(r, 5));
    expect(log).toEqual([]); // still waiting for the batch
    await Promise.all(done);
    expect(log).toEqual(['sync a', 'sync b', 'sync c', 'synced a', 'synced b', 'synced c', 'commit a', 'commit b', 'commit c']);
  });

  test('a full batch and urge() flush at once', async () => {
    const log: string[] = [];
    const g = new GroupCommit(60_000, 2);
    const ab = [g.add(job('a', log)), g.add(job('b', log))];
    await Promise.all(ab); // maxBatch reached: no timer needed
    const c = g.add(job('c', log));
    g.urge();
    await c;
    expect(log.filter((l) => l.startsWith('commit'))).toEqual(['commit a', 'commit b', 'commit c']);
  });

  test('a failed sync fails its own copy only, which is never committed', async () => {
    const log: string[] = [];
    const g = new GroupCommit(1, 64);
    const bad = job('bad', log, new Error('EIO'));
    const good = job('good', log);
    await Promise.all([g.add(bad), g.add(good)]);
    expect(bad.failure).toBeInstanceOf(Error);
    expect(good.failure).toBeUndefined();
    expect(log).toContain('commit good');
    expect(log).not.toContain('commit bad');
  });

  test('copies queued during a flush are flushed next', async () => {
    const log: string[] = [];
    const g = new GroupCommit(60_000, 64);
    const first = g.add(job('a', log));
    g.urge();
    const second = g.add(job('b', log)); // the flush of 'a' is under way
    g.urge();
    await Promise.all([first, second]);
    expect(log.indexOf('commit a')).toBeLessThan(log.indexOf('sync b'));
  });
});
