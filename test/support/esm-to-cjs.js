// A Jest transform for NestJS 12's packages, which are ESM only ("type": "module").
//
// This repository's tests are CommonJS (ts-jest, tsconfig's module commonjs). Node
// itself loads Nest 12 through require(esm) (Node >= 20.19 or >= 22.12: the built
// library, the CLI and the sample app do), but Jest 30 runs each test file's modules
// in its own VM context and can load an ES module from require() there only on Node
// 24.9+ with --experimental-vm-modules (vm.SourceTextModule#hasAsyncGraph); otherwise
// it says "Must use import to load ES Module". So then this turns the files of a
// "type": "module" package under node_modules/@nestjs/ into CommonJS with
// TypeScript's transpiler (the repository's own `typescript`). Files of CommonJS packages (all of Nest 11) are
// passed on unchanged, and so is everything Jest loads as ESM itself.
//
// import.meta has no CommonJS form, so before transpiling:
// - `createRequire(import.meta.url)` becomes the module's own `require` (Jest's, so
//   what it loads is in the test's registry, as with any require), and a declaration
//   `const require = createRequire(import.meta.url);` is dropped (it would redeclare
//   the wrapper's `require` parameter);
// - `import.meta.url`, `.dirname` and `.filename` become their CommonJS equivalents.
'use strict';

const { createHash } = require('node:crypto');
const { readFileSync, existsSync } = require('node:fs');
const { dirname, join } = require('node:path');
const ts = require('typescript');

const OWN_SOURCE = readFileSync(__filename, 'utf8');
const typeByDir = new Map();

/** The "type" of the package.json nearest to a file. */
function packageType(file) {
  const chain = [];
  let type;
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    if (typeByDir.has(dir)) {
      type = typeByDir.get(dir);
      break;
    }
    chain.push(dir);
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      type = JSON.parse(readFileSync(manifest, 'utf8')).type ?? 'commonjs';
      break;
    }
    if (dirname(dir) === dir) {
      type = 'commonjs';
      break;
    }
  }
  for (const dir of chain) typeByDir.set(dir, type);
  return type;
}

function isEsm(filename) {
  return filename.endsWith('.mjs') || (filename.endsWith('.js') && packageType(filename) === 'module');
}

function withoutImportMeta(source) {
  return source
    .replace(/\b(?:const|let|var)\s+require\s*=\s*createRequire\(\s*import\.meta\.url\s*\)\s*;?/g, '')
    .replace(/\bcreateRequire\(\s*import\.meta\.url\s*\)/g, 'require')
    .replace(/\bimport\.meta\.url\b/g, 'require("node:url").pathToFileURL(__filename).href')
    .replace(/\bimport\.meta\.dirname\b/g, '__dirname')
    .replace(/\bimport\.meta\.filename\b/g, '__filename');
}

module.exports = {
  canInstrument: false,

  getCacheKey(source, filename, options) {
    return createHash('sha256')
      .update(OWN_SOURCE)
      .update(ts.version)
      .update(String(Boolean(options.supportsStaticESM)))
      .update(filename)
      .update(source)
      .digest('hex');
  },

  process(source, filename, options) {
    if (options.supportsStaticESM || !isEsm(filename)) return { code: source };
    const { outputText, sourceMapText } = ts.transpileModule(withoutImportMeta(source), {
      fileName: filename,
      compilerOptions: {
        module: ts.ModuleKind.CommonJS,
        target: ts.ScriptTarget.ES2022,
        esModuleInterop: true,
        allowJs: true,
        sourceMap: true,
        inlineSources: true,
      },
      reportDiagnostics: false,
    });
    return { code: outputText.replace(/\n\/\/# sourceMappingURL=.*$/, ''), map: sourceMapText };
  },
};
