#!/usr/bin/env node
import 'reflect-metadata';
import { runCli } from './run-cli';

runCli(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`mo-amqp: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
