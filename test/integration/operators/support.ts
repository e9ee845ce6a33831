/**
 * Shared by the operator-account integration tests: a real `keyhold dev` server, operator accounts
 * made and enrolled through the API as a person would, and TOTP codes computed as an
 * authenticator app does (RFC 6238) from the secret the enrolment showed.
 */
import assert from 'node:assert/strict';
import { totpCodeAt } from '../../../src/operators/totp.js';
import { sleep } from '../../helpers/processes.js';
import { apiCaller, assertOk, type RawResponse } from '../api/api-helpers.js';

export const PASSWORD = 'correct horse battery staple';

/**
 * The code of the step `offset` steps from now. Waits out the last 3 s of a step first, so the
 * step a code was made for is still the server's (± its one-step window) when it arrives.
 */
export async function totp(secret: string, offset = 0): Promise<string> {
  const intoStep = (Date.now() / 1000) % 30;
  if (intoStep > 27) await sleep((30 - intoStep) * 1000 + 200);
  return totpCodeAt(secret, Date.now() + offset * 30_000);
}

export interface Enrolled {
  secret: string;
  recoveryCodes: string[];
  uri: string;
  qrSvg: string;
}

export type Caller = ReturnType<typeof apiCaller>;

/**
 * Creates `name` with the root token and enrols its TOTP. The enrolment is confirmed with the
 * previous step's code, so the account can log in twice in the current window (steps 0 and +1).
 */
export async function createEnrolled(api: Caller, name: string, password = PASSWORD): Promise<Enrolled> {
  await api.asRoot('POST', '/v1/sys/operators', { name, password });
  return enrol(api, name, password);
}

export async function enrol(api: Caller, name: string, password = PASSWORD): Promise<Enrolled> {
  const begun = await api.call(undefined, 'POST', '/v1/auth/operator/enrol', { username: name, password });
  assertOk(begun, 200, `enrol ${name}`);
  const uri = begun.body.otpauth_uri as string;
  const secret = new URL(uri).searchParams.get('secret') as string;
  assert.match(secret, /^[A-Z2-7]{32}$/);
  const confirmed = await api.call(undefined, 'POST', '/v1/auth/operator/enrol/confirm', { username: name, password, code: await totp(secret, -1) });
  assertOk(confirmed, 200, `confirm enrolment of ${name}`);
  return { secret, recoveryCodes: confirmed.body.recovery_codes as string[], uri, qrSvg: begun.body.qr_svg as string };
}

export function login(api: Caller, body: Record<string, unknown>): Promise<RawResponse> {
  return api.call(undefined, 'POST', '/v1/auth/operator/login', body);
}
