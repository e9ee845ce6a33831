import type { Hsm } from '../hsm/types.js';
import type { MaterialCache } from './material.js';
import type { MaterialWrapper } from './protection/material-wrapper.js';
import type { KeyRecordStore } from './record-store.js';

/** What every key operation needs; built once by core/runtime.ts. */
export interface KeysContext {
  hsm: Hsm;
  /** Wraps protection=wrapped material (the HSM wrap key, or the barrier's in-memory one). */
  wrapper: MaterialWrapper;
  records: KeyRecordStore;
  material: MaterialCache;
}
