/**
 * The plugin's unix socket: a path (`/run/keyhold/kms.sock`, `unix:///run/keyhold/kms.sock`) or a
 * Linux abstract name (`@keyhold-kms`, `unix:///@keyhold-kms`, as kube-apiserver writes it).
 */
import { lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { KeyholdError } from '../../errors.js';

export interface SocketAddress {
  /** What grpc-js binds and dials. */
  grpc: string;
  /** The file, when not abstract. */
  path?: string;
  /** As kube-apiserver's EncryptionConfiguration names it. */
  endpoint: string;
}

export function parseSocketAddress(listen: string): SocketAddress {
  let rest = listen.startsWith('unix://') ? listen.slice('unix://'.length) : listen;
  if (rest.startsWith('/@')) rest = rest.slice(1);
  if (rest.startsWith('@')) {
    const name = rest.slice(1);
    if (!/^[\w.-]{1,100}$/.test(name)) throw new KeyholdError('ERR_CONFIG', `abstract socket name ${JSON.stringify(name)} must be 1-100 of [A-Za-z0-9_.-]`);
    return { grpc: `unix-abstract:${name}`, endpoint: `unix:///@${name}` };
  }
  if (!rest.startsWith('/')) throw new KeyholdError('ERR_CONFIG', `--listen must be an absolute socket path or @name, got ${JSON.stringify(listen)}`);
  if (Buffer.byteLength(rest) > 107) throw new KeyholdError('ERR_CONFIG', `socket path is longer than the 107 bytes a unix socket allows: ${rest}`);
  return { grpc: `unix://${rest}`, path: rest, endpoint: `unix://${rest}` };
}

/** Refuses to take over a live socket; removes a stale one left by a crashed run. */
export async function prepareSocketPath(path: string): Promise<void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o750 });
  let stat;
  try {
    stat = lstatSync(path);
  } catch {
    return;
  }
  if (!stat.isSocket()) throw new KeyholdError('ERR_CONFIG', `${path} exists and is not a socket; refusing to replace it`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => { probe.destroy(); resolve(true); });
    probe.once('error', () => resolve(false));
  });
  if (live) throw new KeyholdError('ERR_CONFIG', `another process is serving ${path}`);
  unlinkSync(path);
}

export function removeSocketFile(path: string | undefined): void {
  if (!path) return;
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch { /* already gone */ }
}
