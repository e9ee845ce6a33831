import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { KeyholdError } from '../errors.js';
import type { HsmMemberConfig, HsmMemberTemplate, HsmSettings } from './config.js';
import { parseEndpointSet, type HsmEndpoint, type HsmEndpointSet } from './endpoint-set.js';

/**
 * The endpoint set the operator keeps in a ConfigMap (key `endpoints.json`, mounted as a file),
 * read with the same parser as the watched ConfigMap (endpoint-set.ts). Each endpoint becomes a
 * member from `hsm.memberTemplate`, with `${address}` and `${name}` replaced in every string of the template.
 */
function parse(text: string, file: string): HsmEndpointSet {
  try {
    return parseEndpointSet(text);
  } catch (err) {
    throw new KeyholdError('ERR_CONFIG', `${file}: ${(err as Error).message}`, { cause: err });
  }
}

function fill(value: string, endpoint: HsmEndpoint): string {
  return value.replaceAll('${address}', endpoint.address).replaceAll('${name}', endpoint.name);
}

export function endpointMembers(list: HsmEndpointSet, template: HsmMemberTemplate, sessions?: number): HsmMemberConfig[] {
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

/** The members the file names now, and its text (what watchEndpointFile compares later reads with). */
export function readEndpointFile(file: string, settings: HsmSettings): { members: HsmMemberConfig[]; text: string } {
  if (!settings.memberTemplate) throw new KeyholdError('ERR_CONFIG', 'hsm.endpoints.file needs hsm.memberTemplate');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new KeyholdError('ERR_CONFIG', `cannot read the HSM endpoint file ${file}`, { cause });
  }
  return { members: endpointMembers(parse(text, file), settings.memberTemplate, settings.sessions), text };
}

export interface EndpointWatch {
  close(): void;
}

/**
 * Applies the file's changes to the pool without a restart: fs.watch on the folder (a mounted
 * ConfigMap changes by swapping a symlink, which a watch on the file itself misses), plus a poll
 * every second because fs.watch is not reliable on every file system. An unreadable or invalid
 * file keeps the current members (and is logged once). `applied` is the text the pool's members
 * came from: a change made while the pool was opening is then applied, not taken as the start.
 */
export function watchEndpointFile(
  file: string,
  settings: HsmSettings,
  pool: { setMembers(members: HsmMemberConfig[]): Promise<void> },
  log?: (message: string) => void,
  pollMs = 1000,
  applied?: string,
): EndpointWatch {
  let last = applied;
  if (last === undefined) {
    try { last = readFileSync(file, 'utf8'); } catch { /* read again below */ }
  }
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
