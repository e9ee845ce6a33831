/**
 * A fixed set of PKCS#11 sessions handed out one operation at a time: a session can carry only
 * one active crypto operation (Init…Final), so concurrent requests each borrow their own.
 *
 * A failed operation may leave the session's operation active (SoftHSM does after
 * CKR_ARGUMENTS_BAD or CKR_BUFFER_TOO_SMALL), and PKCS#11 2.40 has no portable way to cancel it:
 * such a session is replaced by a fresh one before anyone else can borrow it.
 */
export class SessionPool {
  private readonly idle: Buffer[];
  private readonly waiters: Array<(session: Buffer) => void> = [];

  constructor(sessions: readonly Buffer[], private readonly renew: (broken: Buffer) => Buffer) {
    this.idle = [...sessions];
  }

  async use<T>(fn: (session: Buffer) => Promise<T> | T): Promise<T> {
    let session = this.idle.pop() ?? (await new Promise<Buffer>((resolve) => this.waiters.push(resolve)));
    try {
      return await fn(session);
    } catch (err) {
      try {
        session = this.renew(session);
      } catch {
        // The token itself is failing; keep the old handle and let the health probe report it.
      }
      throw err;
    } finally {
      const next = this.waiters.shift();
      if (next) next(session);
      else this.idle.push(session);
    }
  }
}
