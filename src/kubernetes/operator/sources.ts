/**
 * Discovery: what each kind of source says the members are. A source either answers (possibly
 * with no endpoints: an empty DNS answer or `[]` is an answer) or fails with a reason.
 */
import { execFile } from 'node:child_process';
import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import { checkEndpoints, type HsmEndpoint } from '../../hsm/endpoint-set.js';
import type { Source } from './spec.js';

/** An endpoint, and where the probe connects when that differs (an SRV target resolved through the source's own resolver). */
export type Discovered = HsmEndpoint & { probeAddress?: string };

export type SourceResult = { ok: true; endpoints: Discovered[] } | { ok: false; reason: string; message: string };

export interface SourceOptions {
  /** Programs a command source may run (argv[0], exactly). Empty: command sources are refused. */
  allowedCommands: readonly string[];
}

/** What a command may print at most: a describe-clusters answer is a few KB. */
const MAX_COMMAND_OUTPUT = 1024 * 1024;

export async function discover(source: Source, options: SourceOptions): Promise<SourceResult> {
  switch (source.kind) {
    case 'static':
      return { ok: true, endpoints: source.endpoints };
    case 'dns':
      return discoverDns(source);
    case 'command':
      return discoverCommand(source, options);
  }
}

/** A DNS name or IP turned into an endpoint name (no colons or slashes: it may name a file). */
function memberName(host: string, port: number): string {
  return `${host.replace(/\.$/, '').replace(/[^A-Za-z0-9._-]/g, '-')}-${port}`.replace(/^[^A-Za-z0-9]+/, '').slice(0, 63);
}

function fillTemplate(template: string, host: string, port: number): string {
  // An IPv6 literal in host:port needs brackets; a template with its own syntax (tcp:host=…) gets it bare.
  const bracketed = template === '${host}:${port}' && isIP(host) === 6 ? `[${host}]` : host;
  return template.replaceAll('${host}', bracketed).replaceAll('${port}', String(port));
}

async function discoverDns(source: Extract<Source, { kind: 'dns' }>): Promise<SourceResult> {
  const resolver = new Resolver({ timeout: 2000, tries: 2 });
  try {
    if (source.resolver) resolver.setServers([source.resolver]) // host:port, [v6]:port or a bare IP (port 53);
  } catch (err) {
    return { ok: false, reason: 'DnsResolverInvalid', message: `resolver ${JSON.stringify(source.resolver)}: ${(err as Error).message}` };
  }
  try {
    let found: { host: string; port: number; probe?: string }[];
    if (source.type === 'SRV') {
      found = (await resolver.resolveSrv(source.name)).sort((a, b) => a.priority - b.priority || b.weight - a.weight).map((r) => ({ host: r.name.replace(/\.$/, ''), port: r.port }));
      // The targets are names the server resolves itself; the probe asks the same resolver as the SRV query did.
      for (const f of found) {
        if (isIP(f.host)) continue;
        const ip = (await resolver.resolve4(f.host).catch(() => resolver.resolve6(f.host)).catch(() => []))[0];
        if (ip) f.probe = isIP(ip) === 6 ? `[${ip}]:${f.port}` : `${ip}:${f.port}`;
      }
    } else {
      const addresses = source.type === 'A' ? await resolver.resolve4(source.name) : await resolver.resolve6(source.name);
      found = addresses.map((host) => ({ host, port: source.port as number }));
    }
    const byName = new Map<string, Discovered>();
    for (const { host, port, probe } of found) {
      const name = memberName(host, port);
      if (!byName.has(name)) byName.set(name, { name, address: fillTemplate(source.addressTemplate, host, port), ...(probe ? { probeAddress: probe } : {}) });
    }
    const endpoints = [...byName.values()];
    checkEndpoints(endpoints.map(({ name, address }) => ({ name, address })), `dns ${source.type} ${source.name}`);
    return { ok: true, endpoints };
  } catch (err) {
    const code = (err as { code?: string }).code;
    // NXDOMAIN and "no records of that type" are answers: the name has no members now.
    if (code === 'ENOTFOUND' || code === 'ENODATA') return { ok: true, endpoints: [] };
    return { ok: false, reason: 'DnsLookupFailed', message: `${source.type} ${source.name}${source.resolver ? ` at ${source.resolver}` : ''}: ${code ?? (err as Error).message}` };
  } finally {
    resolver.cancel();
  }
}

function discoverCommand(source: Extract<Source, { kind: 'command' }>, options: SourceOptions): Promise<SourceResult> {
  const [program, ...args] = source.command as [string, ...string[]];
  if (!options.allowedCommands.includes(program)) {
    return Promise.resolve({ ok: false, reason: 'CommandNotAllowed', message: `${program} is not in the operator's --allow-command list` });
  }
  return new Promise((resolve) => {
    // No shell: argv as given. SIGKILL on timeout: a hung cloud CLI must not hold the loop.
    execFile(program, args, { timeout: source.timeoutMs, killSignal: 'SIGKILL', maxBuffer: MAX_COMMAND_OUTPUT, windowsHide: true, env: process.env }, (err, stdout, stderr) => {
      if (err) {
        const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: number | string };
        const why = e.killed ? `timed out after ${source.timeoutMs / 1000} s` : typeof e.code === 'number' ? `exited with ${e.code}` : e.code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER' ? `printed more than ${MAX_COMMAND_OUTPUT} bytes` : e.message;
        // The first line of stderr only: a vendor tool's error, not pages of it.
        const detail = String(stderr).trim().split('\n')[0]?.slice(0, 300);
        resolve({ ok: false, reason: 'CommandFailed', message: `${program}: ${why}${detail ? `: ${detail}` : ''}` });
        return;
      }
      resolve(parseCommandOutput(program, String(stdout)));
    });
  });
}

/** `[{"name","address"}]` or `{"endpoints": [...]}`. */
export function parseCommandOutput(program: string, stdout: string): SourceResult {
  let doc: unknown;
  try {
    doc = JSON.parse(stdout);
  } catch {
    return { ok: false, reason: 'CommandOutputInvalid', message: `${program}: output is not JSON` };
  }
  const list = Array.isArray(doc) ? doc : (doc as { endpoints?: unknown } | null)?.endpoints;
  try {
    return { ok: true, endpoints: checkEndpoints(list, `${program} output endpoints`) };
  } catch (err) {
    return { ok: false, reason: 'CommandOutputInvalid', message: (err as Error).message };
  }
}
