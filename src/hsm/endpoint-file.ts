import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { KeyholdError } from '../errors.js';
import type { HsmMemberConfig, HsmMemberTemplate, HsmSettings } from './config.js';

/**
 * The endpoint list the operator keeps in a ConfigMap (key `endpoints.json`, mounted as a file):
 * `{"cluster": "...", "endpoints": [{"name": "a", "address": "unix:path=/x.sock"}]}`, healthy
 * endpoints only. Each endpoint becomes a member from `hsm.memberTemplate`, with `${address}` and
 * `${name}` replaced in every string of the template.
 */
interface EndpointList {
  cluster?: string;
  endpoints: Array<{ name: string; address: string }>;
}

function parse(text: string, file: string): EndpointList {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new KeyholdError('ERR_CONFIG', `${file}: not JSON`);
  }
  const endpoints = (value as { endpoints?: unknown } | null)?.endpoints;
  if (!Array.isArray(endpoints)) throw new KeyholdError('ERR_CONFIG', `${file}: "endpoints" must be a list`);
  for (const e of endpoints as unknown[]) {
    const { name, address } = (e ?? {}) as { name?: unknown; address?: unknown };
    if (typeof name !== 'string' || !/^[A-Za-z0-9_.-]{1,63}$/.test(name) || typeof address !== 'string' || address.length === 0 || address.length > 1024) {
      throw new KeyholdError('ERR_CONFIG', `${file}: every endpoint needs a name ([A-Za-z0-9_.-], ≤63) and an address`);
    }
  }
  return value as EndpointList;
}

function fill(value: string, endpoint: { name: string; address: string }): string {
  return value.replaceAll('${address}', endpoint.address).replaceAll('${name}', endpoint.name);
}

export function endpointMembers(list: EndpointList, template: HsmMemberTemplate, sessions?: number): HsmMemberConfig[] {
  return list.endpoints.map((endpoint) => {
    const member: HsmMemberConfig = { name: endpoint.name, module: fill(template.module, endpoint) };
    if (template.tokenLabel !== undefined) member.tokenLabel = fill(template.tokenLabel, endpoint);
    if (template.slot !== undefined) member.slot = fill(template.slot, endpoint);
    if (template.pinEnv !== undefined) member.pinEnv = fill(template.pinEnv, endpoint);
    if (template.pinFile !== undefined) member.pinFile = fill(template.pinFile, endpoint);
    if (template.env) member.env = Object.fromEntries(Object.entries(template.env).map(([k, v]) => [k, fill(v, endpoint)]));
    if (sessions !== undefined) member.sessions = sessions;
    return member;
  });
}

export function readEndpointMembers(file: string, settings: HsmSettings): HsmMemberConfig[] {
  if (!settings.memberTemplate) throw new KeyholdError('ERR_CONFIG', 'hsm.endpoints.file needs hsm.memberTemplate');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new KeyholdError('ERR_CONFIG', `cannot read the HSM endpoint file ${file}`, { cause });
  }
  return endpointMembers(parse(text, file), settings.memberTemplate, settings.sessions);
}

export interface EndpointWatch {
  close(): void;
}

/**
 * Applies the file's changes to the pool without a restart: fs.watch on the folder (a mounted
 * ConfigMap changes by swapping a symlink, which a watch on the file itself misses), plus a poll
 * every second because fs.watch is not reliable on every file system. An unreadable or invalid
 * file keeps the current members (and is logged once).
 */
export function watchEndpointFile(
  file: string,
  settings: HsmSettings,
  pool: { setMembers(members: HsmMemberConfig[]): Promise<void> },
  log?: (message: string) => void,
  pollMs = 1000,
): EndpointWatch {
  let last: string | undefined;
  try { last = readFileSync(file, 'utf8'); } catch { /* read again below */ }
  let lastError: string | undefined;
  const check = (): void => {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      report(`cannot read the HSM endpoint file ${file}: ${(err as Error).message}; keeping the current members`);
      return;
    }
    if (text === last) return;
    let members: HsmMemberConfig[];
    try {
      members = endpointMembers(parse(text, file), settings.memberTemplate as HsmMemberTemplate, settings.sessions);
    } catch (err) {
      report(`${(err as Error).message}; keeping the current members`);
      return;
    }
    last = text;
    lastError = undefined;
    log?.(`HSM endpoint file changed: members ${members.map((m) => m.name).join(', ') || '(none)'}`);
    pool.setMembers(members).catch((err: unknown) => report(`applying the HSM endpoint file failed: ${(err as Error).message}`));
  };
  const report = (message: string): void => {
    if (message !== lastError) log?.(message);
    lastError = message;
  };
  let watcher: FSWatcher | undefined;
  try {
    const name = basename(file);
    watcher = watch(dirname(file), (_event, changed) => {
      if (!changed || changed === name || changed.startsWith('..')) check();
    });
    watcher.on('error', () => { watcher?.close(); watcher = undefined; });
  } catch {
    // The poll below is enough.
  }
  const timer = setInterval(check, pollMs);
  timer.unref();
  return {
    close() {
      clearInterval(timer);
      watcher?.close();
    },
  };
}
