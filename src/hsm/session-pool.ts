/**
 * A fixed set of PKCS#11 sessions handed out one operation at a time: a session can carry only
 * one active crypto operation (Init…Final), so concurrent requests each borrow their own.
 */
export class SessionPool {
  private readonly idle: Buffer[];
  private readonly waiters: Array<(session: Buffer) => void> = [];

  constructor(readonly sessions: readonly Buffer[]) {
    this.idle = [...sessions];
  }

  async use<T>(fn: (session: Buffer) => Promise<T> | T): Promise<T> {
    const session = this.idle.pop() ?? (await new Promise<Buffer>((resolve) => this.waiters.push(resolve)));
    try {
      return await fn(session);
    } finally {
      const next = this.waiters.shift();
      if (next) next(session);
      else this.idle.push(session);
    }
  }

  /** Runs synchronous work on any session without waiting (find, attributes: no operation state). */
  any(): Buffer {
    const first = this.sessions[0];
    if (!first) throw new Error('session pool is empty');
    return first;
  }
}
