#!/usr/bin/env node
import 'reflect-metadata';
import { runCli } from './run-cli';
import { messageOf } from '../util/error-message';

runCli(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`mo-amqp: ${messageOf(err)}\n`);
    process.exitCode = 1;
  },
);
