import type { Hsm } from '../hsm/types.js';
import type { MaterialCache } from './material.js';
import type { MaterialWrapper } from './protection/wrapper.js';
import type { KeyRecordStore } from './record-store.js';

/** What every key operation needs; built once by core/runtime.ts. */
export interface KeysContext {
  hsm: Hsm;
  /** What wraps protection=wrapped material (the seal record says which, protection/wrapper.ts). */
  wrapper: MaterialWrapper;
  records: KeyRecordStore;
  material: MaterialCache;
}
