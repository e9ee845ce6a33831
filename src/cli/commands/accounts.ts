/**
 * `keyhold account …`, `keyhold login`, `keyhold group …`, `keyhold capabilities` (issue 12).
 * Passwords and codes come from a file, an environment variable or stdin (src/cli/prompt.ts),
 * never from argv. A login prints its answer as JSON like `keyhold token create` does (the token
 * to use as KEYHOLD_TOKEN), or with --token-file writes the token there (0600) and prints the rest.
 */
import { writeFileSync } from 'node:fs';
import { KeyholdClient } from '../../client/client.js';
import { printJson } from '../output.js';
import { readSecret } from '../prompt.js';

export interface PasswordFlags { passwordFile?: string }
const PASSWORD_ENV = 'KEYHOLD_PASSWORD';
const NEW_PASSWORD_ENV = 'KEYHOLD_NEW_PASSWORD';

const password = (o: PasswordFlags, question = 'Password: ') => readSecret(question, { file: o.passwordFile, env: PASSWORD_ENV });

/** A TOTP code (`--totp`, a one-time code: harmless in argv once used), else a recovery code or TOTP code read like a password. */
async function secondFactor(o: { totp?: string; recoveryCode?: boolean }): Promise<{ totp: string } | { recovery_code: string }> {
  if (o.totp !== undefined) return { totp: o.totp };
  if (o.recoveryCode) return { recovery_code: await readSecret('Recovery code: ', {}) };
  return { totp: await readSecret('TOTP code: ', {}, false) };
}

export const accountCommands = {
  async create(name: string, o: PasswordFlags) {
    printJson(await KeyholdClient.fromEnv().createOperator(name, await password(o, 'Initial password: ')));
  },
  async list() { printJson(await KeyholdClient.fromEnv().listOperators()); },
  async show(name: string) { printJson(await KeyholdClient.fromEnv().getOperator(name)); },
  async delete(name: string) {
    await KeyholdClient.fromEnv().deleteOperator(name);
    printJson({ deleted: name });
  },
  async reset(name: string, o: PasswordFlags) {
    printJson(await KeyholdClient.fromEnv().resetOperator(name, await password(o, 'New password: ')));
  },
  /** Enrolment's first step: prints the otpauth URI (and with --qr a QR code on stderr) to add to an authenticator app. */
  async enrol(name: string, o: PasswordFlags & { qr?: boolean }) {
    const answer = await KeyholdClient.fromEnv().operatorEnrol(name, await password(o));
    if (o.qr) {
      const qrcode = await import('qrcode');
      process.stderr.write(await qrcode.toString(answer.otpauth_uri, { type: 'terminal', small: true }));
    }
    printJson({ otpauth_uri: answer.otpauth_uri, next: `add it to an authenticator app, then: keyhold account confirm ${name}` });
  },
  /** Confirms enrolment with a code; prints the recovery codes, which are never shown again. */
  async confirm(name: string, o: PasswordFlags & { totp?: string }) {
    const pass = await password(o);
    const code = o.totp ?? await readSecret('TOTP code: ', {}, false);
    const answer = await KeyholdClient.fromEnv().operatorEnrolConfirm(name, pass, code);
    printJson({ recovery_codes: answer.recovery_codes, note: 'keep these offline: each works once instead of a TOTP code, and they are not shown again' });
  },
  /** The person's own password change: the old one, a second factor, the new one (KEYHOLD_NEW_PASSWORD or --new-password-file). */
  async password(name: string, o: PasswordFlags & { newPasswordFile?: string; totp?: string; recoveryCode?: boolean }) {
    const old = await password(o, 'Current password: ');
    const second = await secondFactor(o);
    const next = await readSecret('New password: ', { file: o.newPasswordFile, env: NEW_PASSWORD_ENV });
    await KeyholdClient.fromEnv().operatorChangePassword(name, old, second, next);
    printJson({ changed: name });
  },
};

export async function login(username: string, o: PasswordFlags & { totp?: string; recoveryCode?: boolean; tokenFile?: string }): Promise<void> {
  const pass = await password(o);
  const second = await secondFactor(o);
  const answer = await KeyholdClient.fromEnv().operatorLogin(username, pass, second);
  if (o.tokenFile) {
    writeFileSync(o.tokenFile, `${answer.token as string}\n`, { mode: 0o600 });
    const { token: _token, ...rest } = answer;
    printJson({ ...rest, token_file: o.tokenFile });
  } else {
    printJson(answer);
  }
}

export const groupCommands = {
  async put(name: string, o: { policy: string[]; member: string[]; externalGroup: string[] }) {
    printJson(await KeyholdClient.fromEnv().putGroup(name, { policies: o.policy, members: o.member, external_groups: o.externalGroup }));
  },
  async show(name: string) { printJson(await KeyholdClient.fromEnv().getGroup(name)); },
  async list() { printJson(await KeyholdClient.fromEnv().listGroups()); },
  async delete(name: string) {
    await KeyholdClient.fromEnv().deleteGroup(name);
    printJson({ deleted: name });
  },
};

export async function capabilities(path: string): Promise<void> {
  printJson(await KeyholdClient.fromEnv().capabilities(path));
}
