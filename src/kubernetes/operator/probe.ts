/**
 * The `connect` probe: a member is healthy when it accepts a connection within the timeout. This
 * is what can be asked of any HSM endpoint without its protocol or a PIN; the server's own pool
 * still takes a member out when its PKCS#11 calls fail (a listener that accepts but cannot serve).
 */
import { connect, type Socket } from 'node:net';

export interface ProbeResult {
  healthy: boolean;
  latencyMs: number;
  error?: string;
}

/** Where to connect for an address: `unix:path=…`, `tcp:host=…,port=…`, `host:port`, `[v6]:port`. */
export function probeTarget(address: string): { path: string } | { host: string; port: number } | undefined {
  const unix = /^unix:path=(.+)$/.exec(address);
  if (unix) return { path: unix[1] as string };
  const tcp = /^tcp:(.*)$/.exec(address);
  if (tcp) {
    const fields = Object.fromEntries((tcp[1] as string).split(',').map((kv) => kv.split('=', 2) as [string, string]));
    const port = Number(fields.port);
    return fields.host && Number.isInteger(port) && port > 0 && port < 65536 ? { host: fields.host, port } : undefined;
  }
  const hp = /^\[([^\]]+)\]:(\d+)$/.exec(address) ?? /^([^:/\s]+):(\d+)$/.exec(address);
  if (hp) {
    const port = Number(hp[2]);
    return port > 0 && port < 65536 ? { host: hp[1] as string, port } : undefined;
  }
  return undefined;
}

export function probeConnect(address: string, timeoutMs: number): Promise<ProbeResult> {
  const target = probeTarget(address);
  if (!target) return Promise.resolve({ healthy: false, latencyMs: 0, error: 'address is not unix:path=…, tcp:host=…,port=… or host:port' });
  const started = performance.now();
  return new Promise((resolve) => {
    const done = (error?: string) => {
      clearTimeout(timer);
      socket.destroy();
      const latencyMs = Math.round(performance.now() - started);
      resolve(error ? { healthy: false, latencyMs, error } : { healthy: true, latencyMs });
    };
    const timer = setTimeout(() => done(`no connection within ${timeoutMs} ms`), timeoutMs);
    const socket: Socket = 'path' in target ? connect(target.path) : connect(target.port, target.host);
    socket.once('connect', () => done());
    socket.once('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
  });
}
