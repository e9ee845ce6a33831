/**
 * Operator logins (`/v1/auth/operator/...`): enrolment of the TOTP second factor, login, and the
 * person's own password change. All anonymous (the credentials are in the body), all audited with
 * the username and outcome, none with the body's HMAC (`secretBody`: a keyed hash of a password is
 * a fast offline test of guesses for whoever holds the key).
 */
import { personOf } from '../../identity/person.js';
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import type { AuditHmac } from '../../audit/hmac.js';
import { KeyholdError } from '../../errors.js';
import { tokenId } from '../../identity/tokens.js';
import type { OperatorLogins } from '../../operators/login.js';
import { MAX_PASSWORD_BYTES } from '../../operators/password-hash.js';
import { RECOVERY_CODE_PATTERN } from '../../operators/recovery-codes.js';
import type { OperatorStore } from '../../operators/store.js';
import { OPERATOR_NAME_PATTERN, type SecondFactor } from '../../operators/types.js';
import { EnrolConfirmView, EnrolView, PersonLoginView } from '../../wire/operators.js';
import { clientKey } from '../client-address.js';
import { route, type ApiPlugin } from '../route.js';
import { Closed, ErrorResponse, NoContent, withErrors } from '../schemas.js';
import { startSession } from '../session.js';

export interface OperatorAuthApiOptions {
  operators: OperatorStore;
  logins: OperatorLogins;
  /** Names the issued token in the login's audit record as its own records name it. */
  auditHmac: Pick<AuditHmac, 'mac'>;
}

export const Username = Type.String({ pattern: OPERATOR_NAME_PATTERN.source, maxLength: 63 });
/** Characters here; the byte limit (UTF-8) is checked by the hashing itself. */
export const Password = Type.String({ minLength: 1, maxLength: MAX_PASSWORD_BYTES });
const TotpCode = Type.String({ pattern: '^[0-9]{6}$', description: 'the 6-digit code of the authenticator app' });
const RecoveryCode = Type.String({ minLength: 1, maxLength: 40, pattern: RECOVERY_CODE_PATTERN.source, description: 'one of the recovery codes, instead of a TOTP code' });

const LoginBody = Closed({
  username: Username,
  password: Password,
  totp: Type.Optional(TotpCode),
  recovery_code: Type.Optional(RecoveryCode),
  session: Type.Optional(Type.Boolean({ description: 'for the web console: the token goes into an HttpOnly cookie, not the body' })),
});
const EnrolBody = Closed({ username: Username, password: Password });
const EnrolConfirmBody = Closed({ username: Username, password: Password, code: TotpCode });
const PasswordBody = Closed({ username: Username, password: Password, totp: Type.Optional(TotpCode), recovery_code: Type.Optional(RecoveryCode), new_password: Password });

/** Exactly one of the two second factors. */
function secondFactor(body: { totp?: string | undefined; recovery_code?: string | undefined }): SecondFactor {
  if ((body.totp === undefined) === (body.recovery_code === undefined)) throw new KeyholdError('ERR_BAD_REQUEST', 'give exactly one of totp and recovery_code');
  return body.totp !== undefined ? { totp: body.totp } : { recoveryCode: body.recovery_code as string };
}

/**
 * Runs an attempt, recording its outcome in the audit record: `success`, or `failed` with the
 * reason the store gave (the caller's answer does not say which part was wrong; the log does).
 */
async function audited<T>(request: FastifyRequest, username: string, attempt: () => Promise<T>): Promise<T> {
  const fields = request.keyhold.auditFields;
  fields.username = username;
  try {
    const result = await attempt();
    fields.outcome = 'success';
    return result;
  } catch (err) {
    fields.outcome = 'failed';
    if (err instanceof KeyholdError) fields.reason = typeof err.details?.reason === 'string' ? err.details.reason : err.code;
    throw err;
  }
}

let qrcode: Promise<typeof import('qrcode')> | undefined;
/** The otpauth URI as an SVG QR code; `qrcode` is loaded on the first enrolment only. */
async function qrSvg(uri: string): Promise<string> {
  const lib = await (qrcode ??= import('qrcode'));
  return lib.toString(uri, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
}

export const operatorAuthApi: ApiPlugin<OperatorAuthApiOptions> = async (app, { operators, logins, auditHmac }) => {
  route(app, {
    method: 'POST', url: '/v1/auth/operator/login', operation: 'auth.operator.login', anonymous: true, secretBody: true,
    schema: {
      tags: ['auth'], summary: 'Log in with a password and a TOTP code (or a recovery code); returns a short-lived token of the operator\'s groups\' policies',
      body: LoginBody, response: { ...withErrors({ 200: PersonLoginView }), 423: ErrorResponse, 429: ErrorResponse }, security: [],
    },
    handler: async (req, reply) => {
      const b = req.body;
      const second = secondFactor(b);
      req.keyhold.auditFields.second_factor = 'totp' in second ? 'totp' : 'recovery_code';
      const result = await audited(req, b.username, () => logins.login(b.username, b.password, second, clientKey(req)));
      const f = req.keyhold.auditFields;
      f.groups = result.groups.join(',');
      f.issued_token = auditHmac.mac(tokenId(result.token));
      f.issued_accessor = result.record.accessor as string;
      if ('recoveryCode' in second) f.recovery_codes_left = String(result.operator.recoveryCodesLeft);
      const selectors = result.record.selectors ?? [];
      const identity = { person: personOf(result.record) as string, operator: result.operator.name, groups: result.groups, selectors };
      const expiresAt = result.record.expiresAt as string;
      if (b.session) return { ...startSession(reply, result.token, expiresAt), expires_at: expiresAt, policies: result.record.policies, identity };
      return { token: result.token, accessor: result.record.accessor as string, expires_at: expiresAt, policies: result.record.policies, identity };
    },
  });

  route(app, {
    method: 'POST', url: '/v1/auth/operator/enrol', operation: 'auth.operator.enrol', anonymous: true, secretBody: true,
    schema: {
      tags: ['auth'], summary: 'Begin TOTP enrolment of an account without a second factor: the secret, shown once',
      body: EnrolBody, response: { ...withErrors({ 200: EnrolView }), 423: ErrorResponse, 429: ErrorResponse }, security: [],
    },
    handler: async (req) => {
      const { uri } = await audited(req, req.body.username, () => logins.fromAddress(clientKey(req), () => operators.beginEnrolment(req.body.username, req.body.password)));
      return { otpauth_uri: uri, qr_svg: await qrSvg(uri) };
    },
  });

  route(app, {
    method: 'POST', url: '/v1/auth/operator/enrol/confirm', operation: 'auth.operator.enrol-confirm', anonymous: true, secretBody: true,
    schema: {
      tags: ['auth'], summary: 'Confirm TOTP enrolment with a code; answers the recovery codes, once',
      body: EnrolConfirmBody, response: { ...withErrors({ 200: EnrolConfirmView }), 423: ErrorResponse, 429: ErrorResponse }, security: [],
    },
    handler: async (req) => {
      const b = req.body;
      const { recoveryCodes } = await audited(req, b.username, () => logins.fromAddress(clientKey(req), () => operators.confirmEnrolment(b.username, b.password, b.code)));
      return { recovery_codes: recoveryCodes };
    },
  });

  route(app, {
    method: 'POST', url: '/v1/auth/operator/password', operation: 'auth.operator.change-password', anonymous: true, secretBody: true,
    schema: {
      tags: ['auth'], summary: 'Change one\'s own password: the old one and a second factor; revokes the account\'s live tokens and console sessions',
      body: PasswordBody, response: { ...withErrors({ 204: NoContent }), 423: ErrorResponse, 429: ErrorResponse }, security: [],
    },
    handler: async (req, reply) => {
      const b = req.body;
      const second = secondFactor(b);
      await audited(req, b.username, () => logins.fromAddress(clientKey(req), () => operators.changePassword(b.username, b.password, second, b.new_password)));
      // A person changes a password they think leaked: the tokens and console sessions logged in
      // with the old one end too (as on a reset), or whoever used it keeps them until they expire.
      req.keyhold.auditFields.revoked_tokens = String(await logins.revokeTokens(b.username));
      return reply.code(204).send();
    },
  });
};
