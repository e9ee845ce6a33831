import autocannon from 'autocannon';

export interface LoadResult {
  rps: number;
  p99ms: number;
  non2xx: number;
  errors: number;
}

/** Closed-loop load on loopback: bounded in count and time, stops by itself. */
export async function load(url: string, options: { method?: 'GET' | 'POST' | 'PUT'; body?: string; token?: string; seconds?: number; connections?: number; path?: () => string } = {}): Promise<LoadResult> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  const nextPath = options.path;
  const result = await autocannon({
    url,
    method: options.method ?? 'GET',
    headers,
    body: options.body,
    connections: options.connections ?? 32,
    duration: options.seconds ?? 6,
    // A fresh path per request (e.g. a new secret for every write), when given.
    ...(nextPath ? { requests: [{ setupRequest: (req: autocannon.Request) => ({ ...req, path: nextPath() }) }] } : {}),
  });
  return { rps: result.requests.average, p99ms: result.latency.p99, non2xx: result.non2xx, errors: result.errors };
}
