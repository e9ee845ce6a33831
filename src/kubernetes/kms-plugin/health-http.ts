/** --health-listen: /healthz and /readyz (the same honest Status check), /livez (the process answers) and /metrics. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KeyholdError } from '../../errors.js';
import type { KmsService } from './kms-service.js';
import type { KmsMetrics } from './metrics.js';

export async function serveHealth(listen: string, service: KmsService, metrics: KmsMetrics): Promise<{ url: string; close(): Promise<void> }> {
  const match = /^(.+):(\d{1,5})$/.exec(listen);
  if (!match) throw new KeyholdError('ERR_CONFIG', `--health-listen must be HOST:PORT, got ${JSON.stringify(listen)}`);
  const host = (match[1] as string).replace(/^\[(.*)\]$/, '$1');
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed\n');
    if (path === '/livez') return send(200, 'ok\n');
    if (path === '/healthz' || path === '/readyz') {
      service.status().then((s) => send(s.healthz === 'ok' ? 200 : 503, `${s.healthz}\n`), (err: Error) => send(503, `${err.message}\n`));
      return;
    }
    if (path === '/metrics') {
      metrics.registry.metrics().then((text) => send(200, text, metrics.registry.contentType), () => send(500, 'metrics unavailable\n'));
      return;
    }
    send(404, 'not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(match[2]), host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
