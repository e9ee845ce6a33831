/** CLI output and failure handling: JSON on stdout, `keyhold: CODE: message` on stderr, non-zero exit. */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

export function fail(err: unknown): never {
  const e = err as { code?: unknown; message?: string };
  const code = typeof e.code === 'string' ? `${e.code}: ` : '';
  process.stderr.write(`keyhold: ${code}${e.message ?? String(err)}\n`);
  process.exit(1);
}

/** Runs a command body, turning any failure into a clear message and exit code 1. */
export function run<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      fail(err);
    }
  };
}
