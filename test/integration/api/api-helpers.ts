/**
 * Helpers shared by the API integration tests in this folder: a raw HTTP client (no URL
 * normalisation, so `..`, `%2e%2e` and `//` reach the server as written) and error assertions.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** Parsed JSON body, or undefined when the body is empty or not JSON. */
  body: any;
}

export interface RawRequest {
  method: string;
  /** Sent verbatim as the request target (may contain '..', '%2e', '//'). */
  path: string;
  token?: string;
  /** JSON-encoded unless `raw` is given. */
  json?: unknown;
  /** A raw body string or buffer, sent as is. */
  raw?: string | Buffer;
  /** Defaults to application/json when there is a body. Set to null to send no content-type. */
  contentType?: string | null;
  headers?: Record<string, string>;
  agent?: http.Agent;
  timeoutMs?: number;
  /**
   * For bodies the server should refuse from the headers alone (over the body limit): send the
   * headers, wait up to this long for the answer, and only then send the body. Otherwise the
   * server's early 413 + close races the upload and the client may only see EPIPE.
   */
  earlyResponseMs?: number;
}

/**
 * One HTTP request with an explicit content-length. Resolves as soon as the whole response has
 * arrived, even if the server stops reading the request body early (e.g. 413).
 */
export function request(address: string, req: RawRequest): Promise<RawResponse> {
  const url = new URL(address);
  let payload: Buffer | undefined;
  if (req.raw !== undefined) payload = Buffer.isBuffer(req.raw) ? req.raw : Buffer.from(req.raw, 'utf8');
  else if (req.json !== undefined) payload = Buffer.from(JSON.stringify(req.json), 'utf8');
  const headers: Record<string, string> = { ...(req.headers ?? {}) };
  if (req.token !== undefined) headers.authorization = `Bearer ${req.token}`;
  if (payload !== undefined) {
    headers['content-length'] = String(payload.length);
    if (req.contentType !== null) headers['content-type'] ??= req.contentType ?? 'application/json';
  }
  return new Promise((resolve, reject) => {
    let settled = false;
    let bodySent = false;
    const done = (fn: () => void) => { if (!settled) { settled = true; fn(); } };
    const r = http.request({
      host: url.hostname, port: url.port, method: req.method, path: req.path, headers,
      agent: req.agent ?? false, timeout: req.timeoutMs ?? 30_000,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (err) => done(() => reject(err)));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: any;
        try { body = text ? JSON.parse(text) : undefined; } catch { body = undefined; }
        done(() => resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body }));
        if (!bodySent) r.destroy(); // answered before the upload: this socket cannot be reused
      });
    });
    r.on('timeout', () => r.destroy(new Error(`request timed out: ${req.method} ${req.path}`)));
    // A server that answers early (413) may reset the connection while we still write: the
    // response has been received by then, so only an error before it counts.
    r.on('error', (err) => setTimeout(() => done(() => reject(err)), 50));
    if (payload !== undefined && req.earlyResponseMs !== undefined) {
      r.flushHeaders();
      const timer = setTimeout(() => { if (!settled) { bodySent = true; r.end(payload); } }, req.earlyResponseMs);
      r.on('response', () => clearTimeout(timer));
    } else {
      bodySent = true;
      if (payload !== undefined) r.end(payload);
      else r.end();
    }
  });
}

/**
 * `call(token, method, path, json?)` and `asRoot(method, path, json?, status?)` against a server
 * a suite starts later (in its before hook): `target` is read at each call.
 */
export function apiCaller(target: () => { address: string; root: string }): {
  call(token: string | undefined, method: string, path: string, json?: unknown): Promise<RawResponse>;
  asRoot(method: string, path: string, json?: unknown, status?: number): Promise<any>;
} {
  const call = (token: string | undefined, method: string, path: string, json?: unknown): Promise<RawResponse> =>
    request(target().address, { method, path, ...(token !== undefined ? { token } : {}), ...(json !== undefined ? { json } : {}) });
  const asRoot = async (method: string, path: string, json?: unknown, status = 200): Promise<any> => {
    const res = await call(target().root, method, path, json);
    assertOk(res, status, `root ${method} ${path}`);
    return res.body;
  };
  return { call, asRoot };
}

export const ERROR_CODE = /^ERR_[A-Z_]+$/;

/** Asserts the exact status and error code, and the shape `{ error: { code, message }, request_id }`. */
export function assertError(res: RawResponse, status: number, code: string, what = ''): void {
  const where = `${what ? `${what}: ` : ''}got ${res.status} ${res.text.slice(0, 400)}`;
  assert.equal(res.status, status, where);
  assert.ok(res.body && typeof res.body === 'object', `error body is JSON (${where})`);
  assert.equal(res.body.error?.code, code, where);
  assert.equal(typeof res.body.error?.message, 'string', where);
  assert.equal(typeof res.body.request_id, 'string', where);
  assert.ok(res.body.request_id.length > 0, where);
  assert.deepEqual(Object.keys(res.body).sort(), ['error', 'request_id'], where);
}

export function assertOk(res: RawResponse, status = 200, what = ''): void {
  assert.equal(res.status, status, `${what ? `${what}: ` : ''}got ${res.status} ${res.text.slice(0, 400)}`);
}

export async function assertHealthy(address: string): Promise<void> {
  const res = await request(address, { method: 'GET', path: '/v1/sys/health' });
  assert.equal(res.status, 200, `health: ${res.text}`);
  assert.equal(res.body?.sealed, false);
}

export const b64 = (s: string | Buffer) => (Buffer.isBuffer(s) ? s : Buffer.from(s, 'utf8')).toString('base64');

/** `keyhold:<name>:v<n>:<base64>` → parts. */
export function splitCiphertext(ct: string): { name: string; version: number; body: Buffer } {
  const m = /^keyhold:([^:]+):v(\d+):(.*)$/.exec(ct);
  assert.ok(m, `not a keyhold ciphertext: ${ct}`);
  return { name: m[1] as string, version: Number(m[2]), body: Buffer.from(m[3] as string, 'base64') };
}

export function joinCiphertext(name: string, version: number, body: Buffer): string {
  return `keyhold:${name}:v${version}:${body.toString('base64')}`;
}

/** The OpenAPI operations the server documents, as [METHOD, path template] pairs. */
export async function openApiOperations(address: string): Promise<Array<[string, string]>> {
  const res = await request(address, { method: 'GET', path: '/v1/openapi.json' });
  assert.equal(res.status, 200, res.text.slice(0, 200));
  const ops: Array<[string, string]> = [];
  for (const [path, item] of Object.entries(res.body.paths as Record<string, Record<string, unknown>>)) {
    for (const method of Object.keys(item)) {
      if (['get', 'put', 'post', 'delete', 'patch', 'head', 'options'].includes(method)) ops.push([method.toUpperCase(), path]);
    }
  }
  return ops;
}

export interface TrickleResult {
  /** Everything the server sent. */
  response: string;
  /** When the first response byte arrived, ms after the headers were sent; null if none did. */
  respondedAfterMs: number | null;
  /** When the server closed the connection, ms after the headers were sent; null if it was still open at `giveUpMs`. */
  closedAfterMs: number | null;
  /** Body bytes written before the close. */
  bytesSent: number;
}

/**
 * A slow client on a raw socket: sends `head` (request line and headers, up to and including the
 * blank line, or a partial head to trickle headers), then one more byte (`drip`) every `everyMs`
 * for as long as the connection is open, up to `giveUpMs`.
 */
export function trickle(address: string, head: string, options: { everyMs: number; giveUpMs: number; drip?: string }): Promise<TrickleResult> {
  const url = new URL(address);
  return new Promise((resolve) => {
    const socket = net.connect(Number(url.port), url.hostname);
    const result: TrickleResult = { response: '', respondedAfterMs: null, closedAfterMs: null, bytesSent: 0 };
    let started = 0;
    let timer: NodeJS.Timeout | undefined;
    const finish = () => {
      clearInterval(timer);
      clearTimeout(giveUp);
      resolve(result);
    };
    const giveUp = setTimeout(() => { socket.destroy(); finish(); }, options.giveUpMs);
    socket.on('connect', () => {
      started = Date.now();
      socket.write(head);
      timer = setInterval(() => {
        if (socket.destroyed || !socket.writable) return;
        socket.write(options.drip ?? ' ');
        result.bytesSent++;
      }, options.everyMs);
    });
    socket.on('data', (chunk: Buffer) => {
      result.respondedAfterMs ??= Date.now() - started;
      result.response += chunk.toString('utf8');
    });
    socket.on('error', () => { /* a reset while dripping: the close below records it */ });
    socket.on('close', () => {
      result.closedAfterMs = Date.now() - started;
      finish();
    });
  });
}

/** Sends raw request bytes in one write on a fresh socket and resolves with everything answered until the server closes it (send `Connection: close`). */
export function exchange(address: string, raw: Buffer | string): Promise<string> {
  const url = new URL(address);
  return new Promise((resolve, reject) => {
    let response = '';
    const socket = net.connect(Number(url.port), url.hostname, () => socket.write(raw));
    socket.on('data', (chunk: Buffer) => { response += chunk.toString('utf8'); });
    socket.on('close', () => resolve(response));
    socket.on('error', reject);
  });
}

/** The status line's code and the JSON body of a raw HTTP/1.1 response. */
export function parseRawResponse(raw: string): { status: number; headers: string; body: any } {
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(raw)?.[1] ?? 0);
  const split = raw.indexOf('\r\n\r\n');
  const text = split === -1 ? '' : raw.slice(split + 4);
  let body: any;
  try { body = JSON.parse(text); } catch { body = undefined; }
  return { status, headers: split === -1 ? raw : raw.slice(0, split), body };
}
