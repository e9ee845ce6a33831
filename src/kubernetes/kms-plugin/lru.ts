/** A small least-recently-used map (Map keeps insertion order; a hit moves the entry to the end). */
export class Lru<K, V> {
  readonly #entries = new Map<K, V>();

  constructor(private readonly capacity: number, private readonly onEvict?: (value: V) => void) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('LRU capacity must be a positive integer');
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: K): V | undefined {
    const value = this.#entries.get(key);
    if (value !== undefined) {
      this.#entries.delete(key);
      this.#entries.set(key, value);
    }
    return value;
  }

  set(key: K, value: V): void {
    this.#entries.delete(key);
    this.#entries.set(key, value);
    while (this.#entries.size > this.capacity) {
      const oldest = this.#entries.keys().next().value as K;
      const evicted = this.#entries.get(oldest) as V;
      this.#entries.delete(oldest);
      this.onEvict?.(evicted);
    }
  }

  delete(key: K): void {
    const value = this.#entries.get(key);
    if (value === undefined) return;
    this.#entries.delete(key);
    this.onEvict?.(value);
  }

  clear(): void {
    for (const value of this.#entries.values()) this.onEvict?.(value);
    this.#entries.clear();
  }
}
