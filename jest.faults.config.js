// `npm run test:faults`: tests that break things (kill processes, restart the broker).
// They run one at a time, apart from `npm test`, because they stop the shared broker.
const base = require('./jest.config');

/** @type {import('jest').Config} */
module.exports = {
  ...base,
  testMatch: ['<rootDir>/test/faults/**/*.fault-spec.ts'],
  maxWorkers: 1,
  testTimeout: 120_000,
};
