/** @type {import('jest').Config} */
module.exports = {
  rootDir: '.',
  testEnvironment: 'node',
  testMatch: ['<rootDir>/test/**/*.spec.ts', '<rootDir>/test/**/*.e2e-spec.ts'],
  transform: {
    // tsconfig's isolatedModules makes ts-jest transpile only; `npm run lint` type-checks.
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }],
    // NestJS 12 is ESM only, which Jest loads from CommonJS only on Node 24.9+ with
    // --experimental-vm-modules: this makes its files CommonJS before (it leaves
    // CommonJS packages, as Nest 11, alone).
    '/node_modules/@nestjs/.+\\.m?js$': '<rootDir>/test/support/esm-to-cjs.js',
  },
  transformIgnorePatterns: ['/node_modules/(?!@nestjs/)', '\\.pnp\\.[^\\/]+$'],
  // The sample app imports the library by its package name, as a user's app would.
  moduleNameMapper: { '^nestjs-mo-amqp$': '<rootDir>/lib', '^nestjs-mo-amqp/testing$': '<rootDir>/lib/testing' },
  setupFiles: ['<rootDir>/test/support/broker-env.ts'],
  setupFilesAfterEnv: ['<rootDir>/test/support/isolate-cwd.ts'],
  // e2e specs share one broker; two workers match the two cores.
  maxWorkers: 2,
  testTimeout: 30_000,
};
