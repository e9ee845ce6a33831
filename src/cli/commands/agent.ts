/** `keyhold agent` and `keyhold agent exec`: thin wiring of src/agent/ (client library only). */
import { execFile } from 'node:child_process';
import { setTimeout } from 'node:timers/promises';
import { AgentError, login, renderFiles, resolveEnv, runChild, type FileSecret } from '../../agent/agent.js';
import { parseSecretRef, templateRefs } from '../../client/secret-ref.js';

export interface AgentFlags {
  addr?: string;
  role: string;
  jwtFile: string;
}

function address(flags: AgentFlags): string {
  // Checked here, not by commander: a required option on `agent` would also be demanded of `agent exec`.
  if (!flags.role) throw new AgentError('--role is required');
  const addr = flags.addr ?? process.env.KEYHOLD_ADDR;
  if (!addr) throw new AgentError('no server address: --addr or KEYHOLD_ADDR');
  return addr;
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

/** A positive whole number of seconds from a flag, or a clear error (NaN or 0 would make a tight login loop). */
export function positiveSeconds(flag: string, value: string): number {
  if (!/^[1-9]\d{0,6}$/.test(value)) throw new AgentError(`${flag} must be a whole number of seconds ≥ 1, got ${JSON.stringify(value)}`);
  return Number(value);
}

function octalMode(flag: string, value: string): number {
  if (!/^0?[0-7]{3}$/.test(value)) throw new AgentError(`${flag} must be an octal file mode like 0400, got ${JSON.stringify(value)}`);
  return parseInt(value, 8);
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

export async function runAgent(flags: AgentFlags & { secret: string[]; template: string[]; dest: string; mode: string; refresh?: string; onChange?: string }): Promise<void> {
  const mode = octalMode('--mode', flags.mode);
  const period = flags.refresh === undefined ? undefined : positiveSeconds('--refresh', flags.refresh) * 1000;
  const secrets = [...flags.secret.map((s) => fileSecret(s, mode)), ...flags.template.map((t) => fileTemplate(t, mode))];
  if (secrets.length === 0) throw new AgentError('nothing to render: give at least one --secret NAME=PATH[#FIELD] or --template NAME=<base64>');
  const session = { address: address(flags), role: flags.role, jwtFile: flags.jwtFile };
  const previous = new Map<string, string>();
  let client = await login(session);
  const changed = await renderFiles(client, flags.dest, secrets, previous);
  process.stderr.write(`keyhold agent: rendered ${changed.length} file(s) into ${flags.dest}\n`);
  if (period === undefined) return;
  // Sidecar: keep the files fresh. Jitter (±10%) keeps a fleet of pods from refreshing in step.
  // SIGTERM ends the wait at once: a stopping pod (or a Job's finished sidecar) must not sit out its grace period.
  const stop = new AbortController();
  process.once('SIGTERM', () => stop.abort());
  while (!stop.signal.aborted) {
    try {
      await setTimeout(period * (0.9 + Math.random() * 0.2), undefined, { signal: stop.signal });
    } catch {
      break; // aborted
    }
    try {
      client = await login(session); // re-reads the projected token, which the kubelet rotates
      const updated = await renderFiles(client, flags.dest, secrets, previous);
      if (updated.length > 0) {
        process.stderr.write(`keyhold agent: updated ${updated.join(', ')}\n`);
        if (flags.onChange) execFile('/bin/sh', ['-c', flags.onChange], (err) => err && process.stderr.write(`keyhold agent: --on-change failed: ${err.message}\n`));
      }
    } catch (err) {
      // Keep serving the last good files; say why the refresh failed.
      process.stderr.write(`keyhold agent: refresh failed: ${(err as Error).message}\n`);
    }
  }
}

export async function runAgentExec(flags: AgentFlags, command: string[]): Promise<void> {
  const client = await login({ address: address(flags), role: flags.role, jwtFile: flags.jwtFile });
  const { env } = await resolveEnv(client, process.env);
  process.exitCode = await runChild(command, env);
}
