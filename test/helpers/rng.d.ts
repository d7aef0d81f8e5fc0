/** A seeded PRNG (mulberry32): numbers in [0, 1), the same for the same seed. */
export function rng(seed: number): () => number;
