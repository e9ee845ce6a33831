import { readFileSync } from 'node:fs';
import { KeyholdClient } from '../../client/client.js';
import { printJson } from '../output.js';

export async function status(): Promise<void> {
  const address = (process.env.KEYHOLD_ADDR ?? 'http://127.0.0.1:8200').replace(/\/+$/, '');
  const response = await fetch(`${address}/v1/sys/health`, { signal: AbortSignal.timeout(10_000) }).catch((cause: Error) => {
    throw Object.assign(new Error(`cannot reach keyhold at ${address}: ${cause.message}`), { code: 'ERR_UNREACHABLE' });
  });
  printJson({ address, status: response.status, ...(await response.json() as object) });
  if (response.status !== 200) process.exitCode = 2;
}

export async function policyPut(name: string, file: string): Promise<void> {
  const raw = readFileSync(file === '-' ? 0 : file, 'utf8');
  const { parse } = await import('yaml');
  const doc = parse(raw) as { rules?: Array<{ path: string; capabilities: string[] }> };
  printJson(await KeyholdClient.fromEnv().putPolicy(name, doc.rules ?? []));
}

/** Prints the token, its accessor (to look it up or revoke it later without the token) and its clamped expiry. */
export async function tokenCreate(o: { policy: string[]; ttl?: string; orphan?: boolean }): Promise<void> {
  const ttl = o.ttl === undefined ? undefined : /^\d+$/.test(o.ttl) ? Number(o.ttl) : o.ttl;
  printJson(await KeyholdClient.fromEnv().createToken(o.policy, ttl, { orphan: o.orphan === true }));
}

export async function tokenLookup(o: { accessor: string }): Promise<void> {
  printJson(await KeyholdClient.fromEnv().lookupAccessor(o.accessor));
}

export async function tokenRevoke(o: { accessor: string }): Promise<void> {
  await KeyholdClient.fromEnv().revokeAccessor(o.accessor);
  printJson({ revoked: o.accessor });
}
