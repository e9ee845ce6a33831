/**
 * Secrets a person types into the CLI (a password, a TOTP or recovery code): from a file or an
 * environment variable named by the command, else from stdin — prompted on a terminal with the
 * echo off, else read line by line from a pipe. Never from argv, which other users of the machine
 * can read (ps, /proc/<pid>/cmdline) and shells keep in their history.
 */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { KeyholdError } from '../errors.js';

let piped: Promise<string[]> | undefined;

/** stdin's lines, read once when it is not a terminal. */
function pipedLines(): Promise<string[]> {
  piped ??= new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    process.stdin.on('data', (c: Buffer) => chunks.push(c));
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8').split(/\r?\n/)));
    process.stdin.on('error', reject);
  });
  return piped;
}

/** One line from a terminal, with the echo off when `hidden`. */
function ask(question: string, hidden: boolean): Promise<string> {
  let muted = false;
  const output = new Writable({
    write(chunk: Buffer, _enc, done) {
      if (!muted) process.stderr.write(chunk);
      done();
    },
  });
  const rl = createInterface({ input: process.stdin, output, terminal: true });
  return new Promise((resolve) => {
    rl.question(question, (answer) => {
      rl.close();
      if (hidden) process.stderr.write('\n');
      resolve(answer);
    });
    muted = hidden;
  });
}

/**
 * A secret: the file's first line, or the variable's value, or the next line of stdin (prompted
 * with `question` on a terminal, echo off). Empty is refused.
 */
export async function readSecret(question: string, sources: { file?: string | undefined; env?: string | undefined } = {}, hidden = true): Promise<string> {
  let value: string | undefined;
  if (sources.file !== undefined) value = readFileSync(sources.file === '-' ? 0 : sources.file, 'utf8').split(/\r?\n/)[0];
  else if (sources.env !== undefined && process.env[sources.env]) value = process.env[sources.env];
  else if (process.stdin.isTTY) value = await ask(question, hidden);
  else value = (await pipedLines()).shift();
  if (!value) throw new KeyholdError('ERR_BAD_REQUEST', `${question.replace(/:\s*$/, '')}: nothing given`);
  return value;
}
