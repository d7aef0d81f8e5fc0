/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
  testTimeout: 60000,
  // Mount tests share /dev/fuse and the kernel's mount table; keep them apart.
  maxWorkers: 2,
  // One temporary runtime directory for every daemon's control socket.
  globalSetup: '<rootDir>/test/setup/runtime-dir.js',
  globalTeardown: '<rootDir>/test/setup/teardown.js',
};
