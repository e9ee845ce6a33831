import type { RootRotation } from '../../barrier/rotation.js';
import { RootRotationStatus } from '../../wire/sys.js';
import { route, type ApiPlugin } from '../route.js';
import { withErrors } from '../schemas.js';

export interface SealApiOptions {
  rootRotation: Pick<RootRotation, 'rotate' | 'status'>;
}

/** Policy paths: rotating needs `update` on sys/seal/rotate-root, the progress `read` on sys/seal/rotation (root has both). */
const ROTATE_ROOT_POLICY_PATH = 'sys/seal/rotate-root';
const ROTATION_POLICY_PATH = 'sys/seal/rotation';

/** Root-key rotation (src/barrier/rotation.ts): start one, and follow the rewrite it leaves to the leader. */
export const sealApi: ApiPlugin<SealApiOptions> = async (app, { rootRotation }) => {
  route(app, {
    method: 'POST', url: '/v1/sys/seal/rotate-root', operation: 'sys.seal.rotate-root',
    schema: { tags: ['sys'], summary: 'Rotate the barrier root key: new writes use a new generation, older records are rewritten in the background (409 ERR_ROTATION_IN_PROGRESS while a rewrite runs)', response: withErrors({ 200: RootRotationStatus }) },
    authorize: () => [[ROTATE_ROOT_POLICY_PATH, 'update']],
    handler: async () => rootRotation.rotate(),
  });

  route(app, {
    method: 'GET', url: '/v1/sys/seal/rotation', operation: 'sys.seal.rotation',
    schema: { tags: ['sys'], summary: 'Root-key rotation progress: generation, whether records are still being rewritten, counts', response: withErrors({ 200: RootRotationStatus }) },
    authorize: () => [[ROTATION_POLICY_PATH, 'read']],
    handler: async () => rootRotation.status(),
  });
};
