/** @type {import('jest').Config} */
module.exports = {
  rootDir: '.',
  testEnvironment: 'node',
  testMatch: ['<rootDir>/test/**/*.spec.ts', '<rootDir>/test/**/*.e2e-spec.ts'],
  transform: {
    // tsconfig's isolatedModules makes ts-jest transpile only; `npm run lint` type-checks.
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }],
  },
  // The sample app imports the library by its package name, as a user's app would.
  moduleNameMapper: { '^nestjs-mo-amqp$': '<rootDir>/lib', '^nestjs-mo-amqp/testing$': '<rootDir>/lib/testing' },
  setupFiles: ['<rootDir>/test/support/broker-env.ts'],
  setupFilesAfterEnv: ['<rootDir>/test/support/isolate-cwd.ts'],
  // e2e specs share one broker; two workers match the two cores.
  maxWorkers: 2,
  testTimeout: 30_000,
};
