/**
 * Canonical JSON: object keys sorted recursively, no whitespace. Audit hashes are computed over these
 * exact bytes, and verification re-serialises each parsed line and demands byte equality, so there
 * is exactly one valid spelling of every entry.
 */
export type CanonicalValue = string | number | boolean | null | CanonicalValue[] | { [key: string]: CanonicalValue | undefined };

function isPlainObject(value: object): boolean {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Throws TypeError for values JSON cannot represent faithfully (non-finite numbers, class instances, ...). */
export function canonicalJson(value: unknown): string {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`canonicalJson: non-finite number ${value}`);
      return JSON.stringify(value);
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) return `[${value.map((item: unknown) => canonicalJson(item)).join(',')}]`;
      if (!isPlainObject(value)) throw new TypeError('canonicalJson: only plain objects are supported');
      const record = value as Record<string, unknown>;
      // Properties holding undefined are omitted, as JSON.stringify does, so parse+re-serialise round-trips.
      const parts = Object.keys(record)
        .filter((key) => record[key] !== undefined)
        .sort()
        .map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key])}`);
      return `{${parts.join(',')}}`;
    }
    default:
      throw new TypeError(`canonicalJson: unsupported type ${typeof value}`);
  }
}
