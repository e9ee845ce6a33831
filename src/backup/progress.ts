/** Records done, bytes and rate, on one line redrawn in place: only on a terminal. */
export interface Progress {
  update(records: number, bytes: number): void;
  done(records: number, bytes: number): void;
}

const REDRAW_MS = 200;

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

/** A progress line on `stream` when it is a TTY; none otherwise (logs and pipes get only the result). */
export function terminalProgress(what: string, stream: NodeJS.WriteStream = process.stderr): Progress | undefined {
  if (!stream.isTTY) return undefined;
  const started = Date.now();
  let last = 0;
  const line = (records: number, bytes: number): string => {
    const seconds = Math.max((Date.now() - started) / 1000, 0.001);
    return `keyhold ${what}: ${records} records, ${mib(bytes)}, ${Math.round(records / seconds)} records/s, ${mib(bytes / seconds)}/s`;
  };
  return {
    update(records, bytes) {
      const now = Date.now();
      if (now - last < REDRAW_MS) return;
      last = now;
      stream.write(`\r\x1b[2K${line(records, bytes)}`);
    },
    done(records, bytes) {
      stream.write(`\r\x1b[2K${line(records, bytes)}\n`);
    },
  };
}
