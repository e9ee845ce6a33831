import type { JsonPatchOp } from '../../src/kubernetes/webhook/mutate.js';

/** Just enough RFC 6902 to apply what the webhook emits (add, replace; '-' and indexes), to a copy. */
export function applyPatch(doc: unknown, patch: JsonPatchOp[]): any {
  const root = structuredClone(doc) as any;
  for (const op of patch) {
    const parts = op.path.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = parts.pop() as string;
    let parent = root;
    for (const p of parts) parent = parent[p];
    if (Array.isArray(parent)) {
      if (last === '-') parent.push(op.value);
      else if (op.op === 'add') parent.splice(Number(last), 0, op.value);
      else parent[Number(last)] = op.value;
    } else parent[last] = op.value;
  }
  return root;
}
