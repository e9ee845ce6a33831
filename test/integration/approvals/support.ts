/**
 * Shared by the quorum-approval integration tests: real operator accounts made through the API
 * with the root token and enrolled as a person would (test/integration/operators/support.ts), their
 * logins, and TOTP codes as an authenticator app computes them (otplib, through
 * src/operators/totp.ts). The server refuses a code of a time step it has already accepted for
 * the account (replay), so each person hands out the codes of successive steps: at most three
 * per 30 s (the server takes one step either side of now), then waits for the next.
 */
import { timeStepAt, totpCodeAt, TOTP_PERIOD_SECONDS } from '../../../src/operators/totp.js';
import { sleep } from '../../helpers/processes.js';
import { assertOk, type RawResponse } from '../api/api-helpers.js';
import { createEnrolled, login, PASSWORD, type Caller } from '../operators/support.js';

const PERIOD_MS = TOTP_PERIOD_SECONDS * 1000;

export interface Person {
  name: string;
  secret: string;
  recoveryCodes: string[];
  /** The token of the first login. */
  token: string;
  /** The last time step whose code was used. */
  lastStep: number;
  /** The code last handed out (to replay it). */
  lastCode: string;
}

/**
 * The code of the next time step not used yet for `person` that the server accepts now (± one
 * step), waiting for it if needed. `consume: false` for an attempt the server refuses before it
 * looks at the code (the step stays unused).
 */
export async function nextCode(person: Person, consume = true): Promise<string> {
  for (;;) {
    const now = Date.now();
    const current = timeStepAt(now);
    // The previous step only while it stays inside the server's window until the code arrives.
    const earliest = now - current * PERIOD_MS < PERIOD_MS - 4000 ? current - 1 : current;
    const step = Math.max(person.lastStep + 1, earliest);
    if (step <= current + 1) {
      const code = await totpCodeAt(person.secret, step * PERIOD_MS + 1000);
      if (consume) {
        person.lastStep = step;
        person.lastCode = code;
      }
      return code;
    }
    await sleep((step - 1) * PERIOD_MS - now + 500);
  }
}

/**
 * A new login (another token) of `person`, with one of their recovery codes (so the TOTP steps
 * stay for approvals).
 */
export async function loginAgain(api: Caller, person: Person): Promise<string> {
  const recoveryCode = person.recoveryCodes.pop();
  if (recoveryCode === undefined) throw new Error(`${person.name} has no recovery code left`);
  const res = await login(api, { username: person.name, password: PASSWORD, recovery_code: recoveryCode });
  assertOk(res, 200, `login ${person.name}`);
  return res.body.token as string;
}

/** Creates, enrols and logs in an operator (the root token makes the account, once). */
export async function createPerson(api: Caller, name: string): Promise<Person> {
  const enrolled = await createEnrolled(api, name);
  // The enrolment was confirmed with the previous step's code.
  const person: Person = { name, secret: enrolled.secret, recoveryCodes: enrolled.recoveryCodes, token: '', lastStep: timeStepAt(Date.now()) - 1, lastCode: '' };
  const res = await login(api, { username: name, password: PASSWORD, totp: await nextCode(person) });
  assertOk(res, 200, `login ${name}`);
  person.token = res.body.token as string;
  return person;
}

/** `{ approval }` of a 202: a request was opened instead of acting. */
export interface Pending {
  id: string; params_sha256: string; operation: string; path: string; required: number; expires_at: string;
  rules: Array<{ policy: string; group: string; required: number; approvals: number }>;
}

export function pending(res: RawResponse, what = ''): Pending {
  assertOk(res, 202, what);
  return res.body.approval;
}

/** `refused`: the approval is expected to be refused before the second factor is checked (the code's step stays unused). */
export async function approve(api: Caller, person: Person, id: string, paramsSha256: string, token = person.token, refused = false): Promise<RawResponse> {
  return api.call(token, 'POST', `/v1/sys/approvals/${id}/approve`, { params_sha256: paramsSha256, code: await nextCode(person, !refused) });
}
