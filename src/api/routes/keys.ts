import { Type } from '@sinclair/typebox';
import { decodeBase64 } from '../../crypto/encoding.js';
import type { KeysContext } from '../../keys/context.js';
import { generateDataKey } from '../../keys/datakey.js';
import { describeKey } from '../../keys/describe.js';
import { decrypt, encrypt, rewrap } from '../../keys/encrypt.js';
import { configureKey, createKey, deleteKey, rotateKey } from '../../keys/lifecycle.js';
import { sign, verify } from '../../keys/sign.js';
import { KeyDescription } from '../../wire/key-description.js';
import {
  CipherResult, DataKeyBody, DataKeyResult, DecryptBody, DecryptResult, EncryptBody, KeyConfigBody, KeyList, SignBody, SignResult, VerifyBody, VerifyResult,
} from '../../wire/keys.js';
import { deleteRoute, listRoute, route, type ApiPlugin } from '../route.js';
import { Closed, KeyName, KeyTypeSchema, ProtectionSchema, withErrors } from '../schemas.js';
import { MOUNTS, policyPath } from '../../barrier/mounts.js';

export interface KeysApiOptions {
  keys: KeysContext;
}

const NameParams = Closed({ name: KeyName });
const CreateBody = Closed({ name: KeyName, type: KeyTypeSchema, protection: ProtectionSchema, deletion_allowed: Type.Optional(Type.Boolean()) });

const ctx = (value: string | undefined) => (value === undefined ? undefined : decodeBase64(value, 'context'));
const keyPath = (name: string) => policyPath(MOUNTS.keys, name);

/**
 * The key routes. The crypto routes (encrypt, decrypt, rewrap, datakey, sign, verify) are POSTs
 * that write nothing: `readOnly` gives them one outcome record and no write-ahead request record
 * (docs/design-notes.md, "Audit pipeline"). Every other non-GET route is state-changing.
 */
export const keysApi: ApiPlugin<KeysApiOptions> = async (app, { keys }) => {
  listRoute(app, {
    url: '/v1/keys', operation: 'keys.list', tag: 'keys', summary: 'List key names', schema: KeyList, policyPath: policyPath(MOUNTS.keys),
    list: async () => ({ keys: await keys.records.list() }),
  });

  route(app, {
    method: 'POST', url: '/v1/keys', operation: 'keys.create',
    schema: { tags: ['keys'], summary: 'Create a key', body: CreateBody, response: withErrors({ 200: KeyDescription }) },
    authorize: (req) => [[keyPath(req.body.name), 'create']],
    handler: async (req) => describeKey(await createKey(keys, { name: req.body.name, type: req.body.type, protection: req.body.protection, deletionAllowed: req.body.deletion_allowed })),
  });

  route(app, {
    method: 'GET', url: '/v1/keys/:name', operation: 'keys.read',
    schema: { tags: ['keys'], summary: 'Describe a key and its versions', params: NameParams, response: withErrors({ 200: KeyDescription }) },
    authorize: (req) => [[keyPath(req.params.name), 'read']],
    handler: async (req) => describeKey(await keys.records.get(req.params.name)),
  });

  deleteRoute(app, {
    url: '/v1/keys/:name', operation: 'keys.delete', tag: 'keys', summary: 'Delete a key (only if deletion_allowed) and destroy its HSM objects', params: NameParams,
    authorize: (req) => [[keyPath(req.params.name), 'delete']],
    remove: (req) => deleteKey(keys, req.params.name),
  });

  route(app, {
    method: 'POST', url: '/v1/keys/:name/config', operation: 'keys.configure',
    schema: { tags: ['keys'], summary: 'Retire old versions, allow deletion, disable', params: NameParams, body: KeyConfigBody, response: withErrors({ 200: KeyDescription }) },
    authorize: (req) => [[keyPath(req.params.name), 'update']],
    handler: async (req) => describeKey(await configureKey(keys, req.params.name, {
      minDecryptionVersion: req.body.min_decryption_version, deletionAllowed: req.body.deletion_allowed, disabled: req.body.disabled,
    })),
  });

  route(app, {
    method: 'POST', url: '/v1/keys/:name/rotate', operation: 'keys.rotate',
    schema: { tags: ['keys'], summary: 'Add a new key version', params: NameParams, response: withErrors({ 200: KeyDescription }) },
    authorize: (req) => [[keyPath(req.params.name), 'rotate']],
    handler: async (req) => describeKey(await rotateKey(keys, req.params.name)),
  });

  route(app, {
    method: 'POST', url: '/v1/keys/:name/encrypt', operation: 'keys.encrypt', readOnly: true,
    schema: { tags: ['keys'], summary: 'Encrypt with the latest version', params: NameParams, body: EncryptBody, response: withErrors({ 200: CipherResult }) },
    authorize: (req) => [[keyPath(req.params.name), 'encrypt']],
    handler: async (req) => {
      const plaintext = decodeBase64(req.body.plaintext, 'plaintext');
      try {
        return await encrypt(keys, req.params.name, plaintext, ctx(req.body.context));
      } finally {
        plaintext.fill(0);
      }
    },
  });

  route(app, {
    method: 'POST', url: '/v1/keys/:name/decrypt', operation: 'keys.decrypt', readOnly: true,
    schema: { tags: ['keys'], summary: 'Decrypt a keyhold ciphertext', params: NameParams, body: DecryptBody, response: withErrors({ 200: DecryptResult }) },
    authorize: (req) => [[keyPath(req.params.name), 'decrypt']],
    handler: async (req) => {
      const { plaintext, version } = await decrypt(keys, req.params.name, req.body.ciphertext, ctx(req.body.context));
      try {
        return { plaintext: plaintext.toString('base64'), version };
      } finally {
        plaintext.fill(0);
      }
    },
  });

  route(app, {
    method: 'POST', url: '/v1/keys/:name/rewrap', operation: 'keys.rewrap', readOnly: true,
    schema: { tags: ['keys'], summary: 'Re-encrypt under the latest version without revealing the plaintext', params: NameParams, body: DecryptBody, response: withErrors({ 200: CipherResult }) },
    authorize: (req) => [[keyPath(req.params.name), 'decrypt'], [keyPath(req.params.name), 'encrypt']],
    handler: async (req) => rewrap(keys, req.params.name, req.body.ciphertext, ctx(req.body.context)),
  });

  route(app, {
    method: 'POST', url: '/v1/keys/:name/datakey', operation: 'keys.datakey', readOnly: true,
    schema: { tags: ['keys'], summary: 'Generate a data key (plaintext + wrapped, or wrapped only)', params: NameParams, body: DataKeyBody, response: withErrors({ 200: DataKeyResult }) },
    authorize: (req) => [[keyPath(req.params.name), 'encrypt']],
    handler: async (req) => {
      const key = await generateDataKey(keys, req.params.name, { bits: req.body.bits ?? 256, includePlaintext: req.body.plaintext ?? true, context: ctx(req.body.context) });
      try {
        return { ciphertext: key.ciphertext, version: key.version, ...(key.plaintext ? { plaintext: key.plaintext.toString('base64') } : {}) };
      } finally {
        key.plaintext?.fill(0);
      }
    },
  });

  route(app, {
    method: 'POST', url: '/v1/keys/:name/sign', operation: 'keys.sign', readOnly: true,
    schema: { tags: ['keys'], summary: 'Sign (EC, RSA) or MAC (HMAC) the input', params: NameParams, body: SignBody, response: withErrors({ 200: SignResult }) },
    authorize: (req) => [[keyPath(req.params.name), 'sign']],
    handler: async (req) => sign(keys, req.params.name, decodeBase64(req.body.input, 'input')),
  });

  route(app, {
    method: 'POST', url: '/v1/keys/:name/verify', operation: 'keys.verify', readOnly: true,
    schema: { tags: ['keys'], summary: 'Verify a signature or MAC', params: NameParams, body: VerifyBody, response: withErrors({ 200: VerifyResult }) },
    authorize: (req) => [[keyPath(req.params.name), 'verify']],
    handler: async (req) => verify(keys, req.params.name, decodeBase64(req.body.input, 'input'), req.body.signature),
  });
};
