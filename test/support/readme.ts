import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The repository's README.md. */
export function readme(): string {
  return readFileSync(join(__dirname, '..', '..', 'README.md'), 'utf8');
}

/**
 * The README's code blocks marked to be a file of a fresh app, by that file's
 * path: a block right after `<!-- file: src/app.module.ts -->` (a blank line
 * between them allowed) is src/app.module.ts.
 */
export function readmeFiles(markdown: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const [, path, code] of markdown.matchAll(/^<!-- file: (\S+) -->\n\n?```\w*\n([\s\S]*?)^```$/gm)) {
    if (files.has(path)) throw new Error(`README.md marks two blocks as ${path}`);
    files.set(path, code);
  }
  return files;
}

/** The arguments of the README's `npm install <package> …` line, after `npm`. */
export function readmeInstallArgs(markdown: string, packageName: string): string[] {
  const lines = markdown.match(
    new RegExp(`^npm (?:install|i) ${packageName.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}( .*)?$`, 'gm'),
  );
  if (lines?.length !== 1)
    throw new Error(`README.md should have one "npm install ${packageName} …" line, has ${lines?.length ?? 0}`);
  return lines[0].split(/\s+/).slice(1);
}
