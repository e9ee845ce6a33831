import type { Hsm, HsmKey } from '../hsm/types.js';
import type { MaterialCache } from './material.js';
import type { KeyRecordStore } from './record-store.js';

/** What every key operation needs; built once by core/runtime.ts. */
export interface KeysContext {
  hsm: Hsm;
  /** HSM AES key that wraps protection=wrapped material. */
  wrapKey: HsmKey;
  records: KeyRecordStore;
  material: MaterialCache;
}
