import { readFileSync } from 'node:fs';
import { KeyholdClient } from '../../client/client.js';
import { printJson } from '../output.js';

export async function status(): Promise<void> {
  const address = (process.env.KEYHOLD_ADDR ?? 'http://127.0.0.1:8200').replace(/\/+$/, '');
  const response = await fetch(`${address}/v1/sys/health`, { signal: AbortSignal.timeout(10_000) }).catch((cause: Error) => {
    throw Object.assign(new Error(`cannot reach keyhold at ${address}: ${cause.message}`), { code: 'ERR_UNREACHABLE' });
  });
  const health = await response.json() as object;
  // With a token, the rotation's counts too (health, being public, says only whether it is rewriting).
  const rotation = process.env.KEYHOLD_TOKEN && response.status === 200 ? await KeyholdClient.fromEnv().rootRotation().catch(() => undefined) : undefined;
  printJson({ address, status: response.status, ...health, ...(rotation ? { root_rotation: rotation } : {}) });
  if (response.status !== 200) process.exitCode = 2;
}

/** Starts a root-key rotation; the rewrite of older records goes on in the server (see `rotationStatus`). */
export async function rotateRoot(): Promise<void> {
  printJson(await KeyholdClient.fromEnv().rotateRoot());
}

export async function rotationStatus(): Promise<void> {
  printJson(await KeyholdClient.fromEnv().rootRotation());
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
