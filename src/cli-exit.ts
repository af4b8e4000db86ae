/**
 * How the `hapax` command fails: one line on stderr that says what went wrong and what to do, and an exit
 * code a script can switch on (docs/cli.md lists them). A stack trace only with --debug (or HAPAX_DEBUG=1).
 */
import { CommanderError } from 'commander';
import { ConfigError } from './config/errors.ts';

export const EXIT = {
  OK: 0,
  /** The command could not do its job: the gateway could not start, Redis is down, no such key, a name is taken. */
  FAILURE: 1,
  /** The config file is invalid or cannot be read. */
  INVALID_CONFIG: 2,
  /** The command line itself is wrong: an unknown command or option, a flag value that is not one (EX_USAGE). */
  USAGE: 64,
} as const;

/** A failure the CLI explains itself: `message` is the whole line the user sees. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number = EXIT.FAILURE, options?: ErrorOptions) {
    super(message, options);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

export const debugRequested = (argv: readonly string[] = process.argv): boolean =>
  argv.includes('--debug') || process.env.HAPAX_DEBUG === '1';

/** The exit code and the lines to print for any error that reaches the top of the command. */
export function describeFailure(error: unknown): { code: number; text: string } {
  if (error instanceof ConfigError) return { code: EXIT.INVALID_CONFIG, text: error.message };
  if (error instanceof CliError) return { code: error.exitCode, text: `hapax: ${error.message}` };
  const message = error instanceof Error ? error.message : String(error);
  return { code: EXIT.FAILURE, text: `hapax: ${message}${debugRequested() ? '' : ' (run again with --debug for details)'}` };
}

export function exitOnError(error: unknown): never {
  // Commander has printed its own message already (unknown option, bad flag value).
  if (error instanceof CommanderError) process.exit(error.exitCode === 0 ? EXIT.OK : EXIT.USAGE);
  const { code, text } = describeFailure(error);
  process.stderr.write(`${text}\n`);
  if (debugRequested() && error instanceof Error && error.stack) {
    process.stderr.write(`${error.stack}\n`);
    if (error.cause instanceof Error && error.cause.stack) process.stderr.write(`caused by: ${error.cause.stack}\n`);
  }
  process.exit(code);
}
