// Preloaded (`node --require`) into a bench child to make `@opentelemetry/api`
// unloadable there, as if the optional peer were not installed: the library's
// lib/telemetry/otel.ts then finds no API and neither traces nor measures.
// Only that package (and its subpaths) fails to resolve; everything else loads as usual.
const Module = require('node:module');

const HIDDEN = '@opentelemetry/api';
const resolveFilename = Module._resolveFilename;

Module._resolveFilename = function (request, ...rest) {
  if (request === HIDDEN || request.startsWith(`${HIDDEN}/`)) {
    const err = new Error(`Cannot find module '${request}' (hidden by bench/lib/hide-otel.js)`);
    err.code = 'MODULE_NOT_FOUND';
    throw err;
  }
  return resolveFilename.call(this, request, ...rest);
};
