/**
 * The console's one way to the server: the same /v1 API as every client, with the session cookie
 * (sent by the browser, never readable here) and, on state-changing calls, the CSRF token. The
 * CSRF token lives in this module's memory only: never in localStorage or sessionStorage; a reload
 * fetches a fresh one from GET /v1/auth/session.
 */
let csrfToken: string | null = null;

export function setCsrf(token: string | null): void {
  csrfToken = token;
}

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

export interface Answer<T> {
  status: number;
  body: T;
}

/** Called when the server says the session is gone (401): the app shows the login page. */
let onUnauthenticated: () => void = () => {};
export function whenUnauthenticated(handler: () => void): void {
  onUnauthenticated = handler;
}

export async function api<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer<T>> {
  const h: Record<string, string> = { ...headers };
  if (body !== undefined) h['content-type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) h['x-csrf-token'] = csrfToken;
  const response = await fetch(path, { method, headers: h, credentials: 'same-origin', cache: 'no-store', ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (response.status >= 400) {
    const error = (parsed as { error?: { code?: string; message?: string } } | undefined)?.error;
    // Only a dead session ends it: a wrong second-factor code (401 ERR_SECOND_FACTOR_INVALID) does not.
    if (response.status === 401 && error?.code === 'ERR_UNAUTHENTICATED' && !path.startsWith('/v1/auth/')) onUnauthenticated();
    throw new ApiError(response.status, error?.code ?? 'ERR_UNKNOWN', error?.message ?? `HTTP ${response.status}`);
  }
  return { status: response.status, body: parsed as T };
}

export const get = <T>(path: string) => api<T>('GET', path).then((a) => a.body);

/**
 * A human sentence for a failed call, always with its code (permission denials are the common,
 * expected case; any other 403 says it was not allowed, then the server's words).
 */
export function describeError(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.code === 'ERR_PERMISSION_DENIED') return `Permission denied: ${err.message.replace(/^permission denied:?\s*/i, '') || 'your policies do not allow this'} (${err.code})`;
    return `${err.status === 403 ? 'Not allowed: ' : ''}${err.message} (${err.code})`;
  }
  return err instanceof Error ? err.message : String(err);
}

/** Path segments for URLs: each encoded, slashes kept. */
export const encodePath = (path: string) => path.split('/').map(encodeURIComponent).join('/');
