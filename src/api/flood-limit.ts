/**
 * Per-client limit on requests without valid credentials: a missing, malformed, unknown or
 * expired bearer token (401), and failed logins (anonymous routes answered 4xx). Anyone can send
 * those, and each one costs an audit record with an fdatasync; unlimited, one client filled the
 * audit disk and so stopped the service (issue 9). @fastify/rate-limit does the counting.
 *
 * Authenticated traffic never reaches this module: the 401 path calls it only after
 * authentication has failed, and only anonymous routes (logins) call it up front, so a valid
 * token's fast path pays nothing.
 *
 * Limited requests get 429 ERR_RATE_LIMITED and no audit record of their own. The limiting is
 * recorded in aggregate: one `rate-limit` record when an address is first limited in a window
 * (durable before that 429 leaves, and every later 429 of the window waits for it too), and one
 * with the count of limited requests when the window has closed. The log grows by
 * O(addresses × windows), not O(requests).
 */
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Runtime } from '../core/runtime.js';
import { KeyholdError, isKeyholdError } from '../errors.js';
import { auditedPath } from './audit-hooks.js';
import { clientKey } from './client-address.js';

export const DEFAULT_UNAUTHENTICATED_RATE_LIMIT = { max: 100, windowSeconds: 10 } as const;

/** Addresses tracked at once (counters and open summaries); beyond it, limited addresses are summarised together as '*'. */
const MAX_ADDRESSES = 10_000;

export interface FloodLimit {
  /** After authentication failed: counts an ERR_UNAUTHENTICATED and returns the error to answer with (ERR_RATE_LIMITED once over budget). */
  authenticationFailed(request: FastifyRequest, reply: FastifyReply, err: Error): Promise<Error>;
  /**
   * From onRequest, for an anonymous route (a login): refused once the address's failures in this
   * window plus its logins still running reach the budget, so a burst of concurrent attempts is
   * bounded too. A success is never counted.
   */
  admit(request: FastifyRequest, reply: FastifyReply): Promise<void>;
  /** From onSend, for anonymous routes: ends the attempt, and counts it when it failed (4xx) or its route is `floodCounted`. */
  settled(request: FastifyRequest, reply: FastifyReply): void;
}

/** An address's limited requests in one window of the store. */
interface Episode {
  /** The client's key (client-address.ts addressKey: `192.0.2.7`, `2001:db8:1:2::/64`), or '*'. */
  address: string;
  /** The first limited request's id: both summary records carry it, so they can be paired. */
  requestId: string;
  path: string;
  endsAt: number;
  limited: number;
  /** The opening summary record: durable before any 429 of this episode leaves. */
  recorded: Promise<void>;
}

export async function installFloodLimit(app: FastifyInstance, runtime: Runtime): Promise<FloodLimit> {
  const { max, windowSeconds } = runtime.config.api?.unauthenticatedRateLimit ?? DEFAULT_UNAUTHENTICATED_RATE_LIMIT;
  const windowMs = windowSeconds * 1000;
  // global: false — no route gets the plugin's own hook; keyhold decides when a request counts.
  // Keyed like the login lockout (client-address.ts): the client behind trusted proxies, an IPv6
  // client by its /64, shown as such in the summaries below.
  await app.register(rateLimit, { global: false, max, timeWindow: windowMs, cache: MAX_ADDRESSES, keyGenerator: clientKey });
  const count = app.createRateLimit();

  // Logins admitted and not yet answered, per address.
  const running = new Map<string, number>();

  const episodes = new Map<string, Episode>();
  let timer: NodeJS.Timeout | undefined;

  const summary = (e: Episode, event: 'started' | 'ended') => runtime.audit.append({
    type: 'response',
    requestId: e.requestId,
    operation: 'rate-limit',
    path: e.path,
    outcome: { status: 429, code: 'ERR_RATE_LIMITED' },
    fields: {
      address: e.address, event, max: String(max), window_seconds: String(windowSeconds), window_ends: new Date(e.endsAt).toISOString(),
      ...(event === 'ended' ? { limited: String(e.limited) } : {}),
    },
  });

  const close = (e: Episode): Promise<void> => {
    episodes.delete(e.address);
    // After the opening record only: the pair stays in order in the chain.
    return e.recorded.then(() => summary(e, 'ended')).catch((err: unknown) => {
      app.log.error({ err, address: e.address, limited: e.limited }, 'audit write of a rate-limit summary failed');
    });
  };

  const sweep = () => {
    timer = undefined;
    const now = Date.now();
    let next = Infinity;
    for (const e of episodes.values()) {
      if (e.endsAt <= now) void close(e);
      else next = Math.min(next, e.endsAt);
    }
    if (next !== Infinity) arm(next - now);
  };
  const arm = (delayMs: number) => {
    if (timer !== undefined) return;
    timer = setTimeout(sweep, Math.max(0, delayMs) + 10);
    timer.unref();
  };
  app.addHook('onClose', async () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    await Promise.all([...episodes.values()].map(close));
  });

  /** Answers a request over budget: 429, recorded in the address's episode. */
  const limited = async (request: FastifyRequest, reply: FastifyReply, key: string, ttlMs: number): Promise<KeyholdError> => {
    const now = Date.now();
    let e = episodes.get(key);
    if (e !== undefined && e.endsAt <= now) {
      void close(e);
      e = undefined;
    }
    if (e === undefined) {
      const address = episodes.size < MAX_ADDRESSES ? key : '*';
      e = episodes.get(address);
      if (e === undefined) {
        const opened: Episode = { address, requestId: request.id, path: auditedPath(request).path, endsAt: now + ttlMs, limited: 0, recorded: Promise.resolve() };
        opened.recorded = summary(opened, 'started');
        episodes.set(address, opened);
        arm(ttlMs);
        e = opened;
      }
    }
    e.limited++;
    const seconds = Math.max(1, Math.ceil(ttlMs / 1000));
    reply.header('retry-after', String(seconds));
    try {
      await e.recorded;
    } catch (err) {
      request.log.error({ reqId: request.id, err }, 'audit write of a rate-limit summary failed');
      return new KeyholdError('ERR_AUDIT_UNAVAILABLE', 'audit log unavailable', { cause: err });
    }
    return new KeyholdError('ERR_RATE_LIMITED', `too many unauthenticated or failed requests from this address; retry in ${seconds} s`);
  };

  return {
    async authenticationFailed(request, reply, err) {
      if (!isKeyholdError(err, 'ERR_UNAUTHENTICATED')) return err;
      const r = await count(request);
      return !r.isAllowed && r.isExceeded ? limited(request, reply, r.key, r.ttl) : err;
    },
    async admit(request, reply) {
      const r = await count(request, { increment: false });
      if (r.isAllowed) return;
      const busy = running.get(r.key) ?? 0;
      // remaining = max − failures in this window (0 once over).
      if (r.remaining <= busy) throw await limited(request, reply, r.key, r.ttl > 0 ? r.ttl : windowMs);
      if (running.size >= MAX_ADDRESSES && busy === 0) return; // not tracked: the failure count still applies
      running.set(r.key, busy + 1);
      request.keyhold.floodKey = r.key;
    },
    settled(request, reply) {
      const key = request.keyhold.floodKey;
      if (key !== null) {
        request.keyhold.floodKey = null;
        const busy = (running.get(key) ?? 1) - 1;
        if (busy > 0) running.set(key, busy);
        else running.delete(key);
      }
      const status = reply.statusCode;
      const counted = status >= 400 && status < 500 || request.routeOptions.config?.floodCounted === true;
      if (counted && request.keyhold.errorCode !== 'ERR_RATE_LIMITED') {
        count(request).catch((err: unknown) => request.log.error({ reqId: request.id, err }, 'counting a failed login failed'));
      }
    },
  };
}
