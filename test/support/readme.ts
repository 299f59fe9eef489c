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

/**
 * The arguments, after `npm`, of the README's `npm install <package> …` line for
 * one NestJS major: the one that installs `@nestjs/common@<major>`. The README has
 * one such line per major and no other.
 */
export function readmeInstallArgs(markdown: string, packageName: string, nestMajor: number): string[] {
  const lines =
    markdown.match(
      new RegExp(`^npm (?:install|i) ${packageName.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}( .*)?$`, 'gm'),
    ) ?? [];
  const forMajor = lines.filter((line) => line.split(/\s+/).includes(`@nestjs/common@${nestMajor}`));
  if (forMajor.length !== 1)
    throw new Error(
      `README.md should have one "npm install ${packageName} … @nestjs/common@${nestMajor} …" line, has ${forMajor.length}`,
    );
  return forMajor[0].split(/\s+/).slice(1);
}

/**
 * The JSON block the README marks `<!-- package.json: <label> -->`: what it tells
 * the reader to add to the app's package.json (undefined when there is none).
 */
export function readmePackageJson(markdown: string, label: string): Record<string, unknown> | undefined {
  const marked = [...markdown.matchAll(/^<!-- package\.json: (.+?) -->\n\n?```json\n([\s\S]*?)^```$/gm)].filter(
    ([, name]) => name === label,
  );
  if (marked.length > 1) throw new Error(`README.md marks two package.json blocks as ${label}`);
  return marked.length ? JSON.parse(marked[0][2]) : undefined;
}
