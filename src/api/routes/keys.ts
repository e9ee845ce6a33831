import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { MOUNTS, policyPath } from '../../barrier/mounts.js';
import type { Runtime } from '../../core/runtime.js';
import { decodeBase64 } from '../../crypto/encoding.js';
import { generateDataKey } from '../../keys/datakey.js';
import { describeKey } from '../../keys/describe.js';
import { decrypt, encrypt, rewrap } from '../../keys/encrypt.js';
import { configureKey, createKey, deleteKey, rotateKey } from '../../keys/lifecycle.js';
import { sign, verify } from '../../keys/sign.js';
import { Base64, Closed, KeyName, KeyTypeSchema, ProtectionSchema, withErrors } from '../schemas.js';

const NameParams = Closed({ name: KeyName });
type NameParams = Static<typeof NameParams>;

const KeyDescription = Closed({
  name: Type.String(), type: Type.String(), protection: Type.String(), created_at: Type.String(),
  latest_version: Type.Integer(), min_decryption_version: Type.Integer(), deletion_allowed: Type.Boolean(), disabled: Type.Boolean(),
  versions: Type.Array(Closed({ version: Type.Integer(), created_at: Type.String(), public_key: Type.Optional(Type.String()) })),
});

const CreateBody = Closed({ name: KeyName, type: KeyTypeSchema, protection: ProtectionSchema, deletion_allowed: Type.Optional(Type.Boolean()) });
const ConfigBody = Closed({ min_decryption_version: Type.Optional(Type.Integer({ minimum: 1 })), deletion_allowed: Type.Optional(Type.Boolean()), disabled: Type.Optional(Type.Boolean()) });
const EncryptBody = Closed({ plaintext: Base64('plaintext, base64'), context: Type.Optional(Base64('additional authenticated data, base64', 8192)) });
const Ciphertext = Type.String({ maxLength: 1_400_000, description: 'keyhold:<key>:v<version>:<base64>' });
const DecryptBody = Closed({ ciphertext: Ciphertext, context: Type.Optional(Base64('the context given at encryption', 8192)) });
const DataKeyBody = Closed({ bits: Type.Optional(Type.Union([Type.Literal(128), Type.Literal(256)])), plaintext: Type.Optional(Type.Boolean({ description: 'false: return only the wrapped data key' })), context: Type.Optional(Base64('context, base64', 8192)) });
const SignBody = Closed({ input: Base64('data to sign, base64') });
const VerifyBody = Closed({ input: Base64('signed data, base64'), signature: Type.String({ maxLength: 8192 }) });
const CipherResult = Closed({ ciphertext: Type.String(), version: Type.Integer() });

const ctx = (value: string | undefined) => (value === undefined ? undefined : decodeBase64(value, 'context'));
const keyPath = (name: string) => policyPath(MOUNTS.keys, name);

/**
 * The crypto routes (encrypt, decrypt, rewrap, datakey, sign, verify) are POSTs that write
 * nothing: `readOnly` gives them one outcome record and no write-ahead request record
 * (docs/design-notes.md, "Audit pipeline"). Every other non-GET route is state-changing.
 */
export function keyRoutes(app: FastifyInstance, runtime: Runtime): void {
  const keys = runtime.keys;

  app.get('/v1/keys', {
    schema: { tags: ['keys'], summary: 'List key names', response: withErrors({ 200: Closed({ keys: Type.Array(Type.String()) }) }) },
    config: { operation: 'keys.list', authorize: () => [[policyPath(MOUNTS.keys), 'list']] },
  }, async () => ({ keys: await keys.records.list() }));

  app.post<{ Body: Static<typeof CreateBody> }>('/v1/keys', {
    schema: { tags: ['keys'], summary: 'Create a key', body: CreateBody, response: withErrors({ 200: KeyDescription }) },
    config: { operation: 'keys.create', authorize: (req) => [[keyPath((req.body as Static<typeof CreateBody>).name), 'create']] },
  }, async (req) => describeKey(await createKey(keys, { name: req.body.name, type: req.body.type, protection: req.body.protection, deletionAllowed: req.body.deletion_allowed })));

  app.get<{ Params: NameParams }>('/v1/keys/:name', {
    schema: { tags: ['keys'], summary: 'Describe a key and its versions', params: NameParams, response: withErrors({ 200: KeyDescription }) },
    config: { operation: 'keys.read', authorize: (req) => [[keyPath((req.params as NameParams).name), 'read']] },
  }, async (req) => describeKey(await keys.records.get(req.params.name)));

  app.delete<{ Params: NameParams }>('/v1/keys/:name', {
    schema: { tags: ['keys'], summary: 'Delete a key (only if deletion_allowed) and destroy its HSM objects', params: NameParams, response: withErrors({ 204: Type.Null() }) },
    config: { operation: 'keys.delete', authorize: (req) => [[keyPath((req.params as NameParams).name), 'delete']] },
  }, async (req, reply) => {
    await deleteKey(keys, req.params.name);
    return reply.code(204).send();
  });

  app.post<{ Params: NameParams; Body: Static<typeof ConfigBody> }>('/v1/keys/:name/config', {
    schema: { tags: ['keys'], summary: 'Retire old versions, allow deletion, disable', params: NameParams, body: ConfigBody, response: withErrors({ 200: KeyDescription }) },
    config: { operation: 'keys.configure', authorize: (req) => [[keyPath((req.params as NameParams).name), 'update']] },
  }, async (req) => describeKey(await configureKey(keys, req.params.name, {
    minDecryptionVersion: req.body.min_decryption_version, deletionAllowed: req.body.deletion_allowed, disabled: req.body.disabled,
  })));

  app.post<{ Params: NameParams }>('/v1/keys/:name/rotate', {
    schema: { tags: ['keys'], summary: 'Add a new key version', params: NameParams, response: withErrors({ 200: KeyDescription }) },
    config: { operation: 'keys.rotate', authorize: (req) => [[keyPath((req.params as NameParams).name), 'rotate']] },
  }, async (req) => describeKey(await rotateKey(keys, req.params.name)));

  app.post<{ Params: NameParams; Body: Static<typeof EncryptBody> }>('/v1/keys/:name/encrypt', {
    schema: { tags: ['keys'], summary: 'Encrypt with the latest version', params: NameParams, body: EncryptBody, response: withErrors({ 200: CipherResult }) },
    config: { operation: 'keys.encrypt', readOnly: true, authorize: (req) => [[keyPath((req.params as NameParams).name), 'encrypt']] },
  }, async (req) => {
    const plaintext = decodeBase64(req.body.plaintext, 'plaintext');
    try {
      return await encrypt(keys, req.params.name, plaintext, ctx(req.body.context));
    } finally {
      plaintext.fill(0);
    }
  });

  app.post<{ Params: NameParams; Body: Static<typeof DecryptBody> }>('/v1/keys/:name/decrypt', {
    schema: { tags: ['keys'], summary: 'Decrypt a keyhold ciphertext', params: NameParams, body: DecryptBody, response: withErrors({ 200: Closed({ plaintext: Type.String(), version: Type.Integer() }) }) },
    config: { operation: 'keys.decrypt', readOnly: true, authorize: (req) => [[keyPath((req.params as NameParams).name), 'decrypt']] },
  }, async (req) => {
    const { plaintext, version } = await decrypt(keys, req.params.name, req.body.ciphertext, ctx(req.body.context));
    try {
      return { plaintext: plaintext.toString('base64'), version };
    } finally {
      plaintext.fill(0);
    }
  });

  app.post<{ Params: NameParams; Body: Static<typeof DecryptBody> }>('/v1/keys/:name/rewrap', {
    schema: { tags: ['keys'], summary: 'Re-encrypt under the latest version without revealing the plaintext', params: NameParams, body: DecryptBody, response: withErrors({ 200: CipherResult }) },
    config: { operation: 'keys.rewrap', readOnly: true, authorize: (req) => [[keyPath((req.params as NameParams).name), 'decrypt'], [keyPath((req.params as NameParams).name), 'encrypt']] },
  }, async (req) => rewrap(keys, req.params.name, req.body.ciphertext, ctx(req.body.context)));

  app.post<{ Params: NameParams; Body: Static<typeof DataKeyBody> }>('/v1/keys/:name/datakey', {
    schema: { tags: ['keys'], summary: 'Generate a data key (plaintext + wrapped, or wrapped only)', params: NameParams, body: DataKeyBody, response: withErrors({ 200: Closed({ ciphertext: Type.String(), version: Type.Integer(), plaintext: Type.Optional(Type.String()) }) }) },
    config: { operation: 'keys.datakey', readOnly: true, authorize: (req) => [[keyPath((req.params as NameParams).name), 'encrypt']] },
  }, async (req) => {
    const key = await generateDataKey(keys, req.params.name, { bits: req.body.bits ?? 256, includePlaintext: req.body.plaintext ?? true, context: ctx(req.body.context) });
    try {
      return { ciphertext: key.ciphertext, version: key.version, ...(key.plaintext ? { plaintext: key.plaintext.toString('base64') } : {}) };
    } finally {
      key.plaintext?.fill(0);
    }
  });

  app.post<{ Params: NameParams; Body: Static<typeof SignBody> }>('/v1/keys/:name/sign', {
    schema: { tags: ['keys'], summary: 'Sign (EC, RSA) or MAC (HMAC) the input', params: NameParams, body: SignBody, response: withErrors({ 200: Closed({ signature: Type.String(), version: Type.Integer() }) }) },
    config: { operation: 'keys.sign', readOnly: true, authorize: (req) => [[keyPath((req.params as NameParams).name), 'sign']] },
  }, async (req) => sign(keys, req.params.name, decodeBase64(req.body.input, 'input')));

  app.post<{ Params: NameParams; Body: Static<typeof VerifyBody> }>('/v1/keys/:name/verify', {
    schema: { tags: ['keys'], summary: 'Verify a signature or MAC', params: NameParams, body: VerifyBody, response: withErrors({ 200: Closed({ valid: Type.Boolean(), version: Type.Integer() }) }) },
    config: { operation: 'keys.verify', readOnly: true, authorize: (req) => [[keyPath((req.params as NameParams).name), 'verify']] },
  }, async (req) => verify(keys, req.params.name, decodeBase64(req.body.input, 'input'), req.body.signature));
}
