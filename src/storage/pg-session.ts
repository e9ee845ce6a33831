/**
 * What the long-lived, unpooled PostgreSQL sessions of a replica share (the LISTEN connection of
 * the change feed, the leader's lock session): how they are made, and a bound on every wait.
 */
import type pg from 'pg';

/** A new, unconnected client for the store's database: same URL, password and TLS as its pool, plus `overrides`. */
export type NewPgClient = (overrides: Partial<pg.ClientConfig>) => pg.Client;

/** Rejects when `promise` has not settled within `ms`: a dead peer without a FIN would leave a query waiting for ever. */
export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer from PostgreSQL in ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
