/**
 * `keyhold agent` and `keyhold agent exec`: flag parsing and the init/sidecar loop.
 *
 * This module is also compiled to CommonJS (tsconfig.agent.json) and loaded by the `keyhold`
 * launcher before anything else, so the process that runs in every pod loads neither commander nor
 * Node's ESM loader: that is about 3 MB of its RSS (measured: 48 → 45 MB). It must therefore stay
 * free of ESM-only syntax (import.meta, top-level await) and import only node: built-ins, the
 * client library and its siblings here.
 */
import { execFile } from 'node:child_process';
import { setTimeout } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { parseSecretRef, templateRefs } from '../client/secret-ref.js';
import { AgentError, login, renderFiles, resolveEnv, runChild, type AgentLogin, type FileSecret } from './agent.js';

const USAGE = `Usage: keyhold agent [options]            render secrets into files (init; with --refresh, a sidecar)
       keyhold agent exec [options] -- <command> [args...]
                                              resolve keyhold:<path>#<field> environment values, then run the command

Options (both):
  --addr <url>          keyhold server (default KEYHOLD_ADDR)
  --role <name>         Kubernetes login role (required)
  --jwt-file <file>     projected service-account token (default /var/run/secrets/keyhold/token)
Options (files):
  --secret <spec>       NAME=PATH[#FIELD][:MODE], repeatable
  --template <spec>     NAME=<base64 template with {{ path#field }} placeholders>[:MODE], repeatable
  --dest <dir>          directory for the files, an in-memory volume (default /keyhold/secrets)
  --mode <octal>        default file mode (default 0400)
  --refresh <seconds>   sidecar: keep refreshing every N seconds (±10% jitter)
  --on-change <command> sidecar: run this shell command after files change
`;

const LOGIN_OPTIONS = {
  addr: { type: 'string' },
  role: { type: 'string' },
  'jwt-file': { type: 'string', default: '/var/run/secrets/keyhold/token' },
  help: { type: 'boolean', short: 'h' },
} as const;

const FILE_OPTIONS = {
  ...LOGIN_OPTIONS,
  secret: { type: 'string', multiple: true, default: [] as string[] },
  template: { type: 'string', multiple: true, default: [] as string[] },
  dest: { type: 'string', default: '/keyhold/secrets' },
  mode: { type: 'string', default: '0400' },
  refresh: { type: 'string' },
  'on-change': { type: 'string' },
} as const;

export interface FileAgentOptions {
  session: AgentLogin;
  secrets: FileSecret[];
  dest: string;
  /** Sidecar refresh period in milliseconds; absent for an init container. */
  periodMs?: number;
  onChange?: string;
}

/** A positive whole number of seconds from a flag, or a clear error (NaN or 0 would make a tight login loop). */
export function positiveSeconds(flag: string, value: string): number {
  if (!/^[1-9]\d{0,6}$/.test(value)) throw new AgentError(`${flag} must be a whole number of seconds ≥ 1, got ${JSON.stringify(value)}`);
  return Number(value);
}

function octalMode(flag: string, value: string): number {
  if (!/^0?[0-7]{3}$/.test(value)) throw new AgentError(`${flag} must be an octal file mode like 0400, got ${JSON.stringify(value)}`);
  return parseInt(value, 8);
}

/** `name=path[#field]` with an optional `:0440`-style mode suffix. */
function fileSecret(spec: string, defaultMode: number): FileSecret {
  const eq = spec.indexOf('=');
  if (eq <= 0) throw new AgentError(`--secret must be NAME=PATH[#FIELD][:MODE], got ${JSON.stringify(spec)}`);
  let rest = spec.slice(eq + 1);
  let mode = defaultMode;
  const modeMatch = /:(0?[0-7]{3})$/.exec(rest);
  if (modeMatch) {
    mode = parseInt(modeMatch[1] as string, 8);
    rest = rest.slice(0, -modeMatch[0].length);
  }
  try {
    return { name: spec.slice(0, eq), ref: parseSecretRef(rest), mode };
  } catch (err) {
    throw new AgentError(`--secret ${spec}: ${(err as Error).message}`);
  }
}

/** `name=<base64 template>` with an optional `:0440`-style mode suffix. */
function fileTemplate(spec: string, defaultMode: number): FileSecret {
  const match = /^([A-Za-z0-9][A-Za-z0-9._-]{0,127})=([A-Za-z0-9+/=]+)(?::(0?[0-7]{3}))?$/.exec(spec);
  if (!match) throw new AgentError('--template must be NAME=<base64 of the template>[:MODE]');
  const template = Buffer.from(match[2] as string, 'base64').toString('utf8');
  try {
    templateRefs(template);
  } catch (err) {
    throw new AgentError(`--template ${match[1]}: ${(err as Error).message}`);
  }
  return { name: match[1] as string, template, mode: match[3] ? parseInt(match[3], 8) : defaultMode };
}

function loginOptions(values: { addr?: string | undefined; role?: string | undefined; 'jwt-file': string }): AgentLogin {
  if (!values.role) throw new AgentError('--role is required');
  const address = values.addr ?? process.env.KEYHOLD_ADDR;
  if (!address) throw new AgentError('no server address: --addr or KEYHOLD_ADDR');
  return { address, role: values.role, jwtFile: values['jwt-file'] };
}

function parsed<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    // parseArgs' messages name the flag ("Unknown option '--x'"); keep them, under our error type.
    throw new AgentError((err as Error).message);
  }
}

/** Validated options of `keyhold agent`, or undefined when help was asked for. */
export function parseFileAgentArgs(args: string[]): FileAgentOptions | undefined {
  const { values } = parsed(() => parseArgs({ args, options: FILE_OPTIONS, strict: true }));
  if (values.help) return undefined;
  const mode = octalMode('--mode', values.mode);
  const secrets = [...values.secret.map((s) => fileSecret(s, mode)), ...values.template.map((t) => fileTemplate(t, mode))];
  if (secrets.length === 0) throw new AgentError('nothing to render: give at least one --secret NAME=PATH[#FIELD] or --template NAME=<base64>');
  return {
    session: loginOptions(values),
    secrets,
    dest: values.dest,
    ...(values.refresh === undefined ? {} : { periodMs: positiveSeconds('--refresh', values.refresh) * 1000 }),
    ...(values['on-change'] === undefined ? {} : { onChange: values['on-change'] }),
  };
}

/** Validated options of `keyhold agent exec`: everything after `--` is the command, untouched. */
export function parseExecArgs(args: string[]): { session: AgentLogin; command: string[] } | undefined {
  const separator = args.indexOf('--');
  const { values } = parsed(() => parseArgs({ args: separator < 0 ? args : args.slice(0, separator), options: LOGIN_OPTIONS, strict: true }));
  if (values.help) return undefined;
  const command = separator < 0 ? [] : args.slice(separator + 1);
  if (command.length === 0) throw new AgentError('agent exec needs the command after --, e.g. keyhold agent exec --role app -- /app/server');
  return { session: loginOptions(values), command };
}

/** Init: render once. Sidecar: render, then keep the files fresh until SIGTERM. */
export async function runFileAgent(options: FileAgentOptions): Promise<void> {
  const previous = new Map<string, string>();
  let session = await login(options.session);
  const changed = await renderFiles(session.client, options.dest, options.secrets, previous);
  process.stderr.write(`keyhold agent: rendered ${changed.length} file(s) into ${options.dest}\n`);
  if (options.periodMs === undefined) return;
  // Jitter (±10%) keeps a fleet of pods from refreshing in step. SIGTERM ends the wait at once:
  // a stopping pod (or a Job's finished sidecar) must not sit out its grace period.
  const stop = new AbortController();
  process.once('SIGTERM', () => stop.abort());
  while (!stop.signal.aborted) {
    try {
      await setTimeout(options.periodMs * (0.9 + Math.random() * 0.2), undefined, { signal: stop.signal });
    } catch {
      break; // aborted
    }
    try {
      // A new login only when the keyhold token is two thirds through its TTL (it re-reads the
      // projected token, which the kubelet rotates): every login is a token record on the server.
      if (Date.now() >= session.renewAtMs) session = await login(options.session);
      let updated: string[];
      try {
        updated = await renderFiles(session.client, options.dest, options.secrets, previous);
      } catch (err) {
        // Revoked or expired early (say, the server's store was restored): log in once and retry.
        if (!(err instanceof AgentError && err.apiCode === 'ERR_UNAUTHENTICATED')) throw err;
        session = await login(options.session);
        updated = await renderFiles(session.client, options.dest, options.secrets, previous);
      }
      if (updated.length > 0) {
        process.stderr.write(`keyhold agent: updated ${updated.join(', ')}\n`);
        const onChange = options.onChange;
        if (onChange) execFile('/bin/sh', ['-c', onChange], (err) => err && process.stderr.write(`keyhold agent: --on-change failed: ${err.message}\n`));
      }
    } catch (err) {
      // Keep serving the last good files; say why the refresh failed.
      process.stderr.write(`keyhold agent: refresh failed: ${(err as Error).message}\n`);
    }
  }
}

/**
 * Entry point for `keyhold agent …` (argv after "agent"). Returns the exit code; failures are one
 * line on stderr in the CLI's format (`keyhold: message`), never a stack trace.
 */
export async function main(argv: string[]): Promise<number> {
  try {
    if (argv[0] === 'exec') {
      const exec = parseExecArgs(argv.slice(1));
      if (!exec) return help();
      const { client } = await login(exec.session);
      const { env } = await resolveEnv(client, process.env);
      return await runChild(exec.command, env);
    }
    const options = parseFileAgentArgs(argv);
    if (!options) return help();
    await runFileAgent(options);
    return 0;
  } catch (err) {
    process.stderr.write(`keyhold: ${(err as Error).message}\n`);
    return 1;
  }
}

function help(): number {
  process.stdout.write(USAGE);
  return 0;
}
