// A seeded PRNG (mulberry32), shared by the TypeScript helpers and the plain
// node child processes (apply-ops.js, stress-worker.js), so that one seed
// means the same stack and the same operations everywhere.
'use strict';
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
module.exports = { rng };
