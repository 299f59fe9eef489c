/** `word` as one word of a shell command line (quoted when it needs to be), for the fixes errors suggest. */
export function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
