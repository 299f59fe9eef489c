/** What a command needs from its surroundings; tests pass their own. */
export interface CliIo {
  readonly env: NodeJS.ProcessEnv;
  out(line: string): void;
  err(line: string): void;
  /** Resolves when the user asks to stop (Ctrl-C, SIGTERM). */
  readonly stopped: Promise<void>;
}
