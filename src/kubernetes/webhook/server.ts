/**
 * `keyhold webhook`: AdmissionReview v1 over TLS. Certificates come from files (cert-manager or
 * your own CA) and are re-read when they change, so a rotated leaf is served without a restart
 * and without a window where the old one has expired.
 */
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { V1Pod } from '@kubernetes/client-node';
import { mutate, type InjectorOptions, type Mutation } from './mutate.js';
import type { TlsSource } from './tls.js';

export interface WebhookOptions extends InjectorOptions {
  listen: { host: string; port: number };
  /** Serving certificate: files (fileTls) or self-managed (selfManagedTls). */
  tls: TlsSource;
  log: { info(fields: object, msg: string): void; warn(fields: object, msg: string): void };
}

interface AdmissionReview {
  apiVersion?: string;
  kind?: string;
  request?: { uid?: string; kind?: { kind?: string }; namespace?: string; operation?: string; object?: V1Pod; dryRun?: boolean };
}

const MAX_BODY = 3 * 1024 * 1024;

/** The AdmissionReview answer for one mutation decision. */
export function admissionResponse(uid: string, mutation: Mutation): object {
  const response: Record<string, unknown> = { uid, allowed: mutation.kind !== 'refuse' };
  if (mutation.kind === 'patch') {
    response.patchType = 'JSONPatch';
    response.patch = Buffer.from(JSON.stringify(mutation.patch)).toString('base64');
  }
  if (mutation.kind === 'refuse') response.status = { code: 400, message: mutation.message };
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response };
}

export async function serveWebhook(options: WebhookOptions): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer({ ...options.tls.current(), minVersion: 'TLSv1.2' }, (req, res) => {
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'GET' && req.url === '/healthz') return reply(200, { ok: true });
    if (req.method !== 'POST' || req.url?.split('?')[0] !== '/mutate') return reply(404, { error: 'not found' });
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reply(413, { error: 'AdmissionReview too large' });
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (res.headersSent) return;
      let review: AdmissionReview;
      try {
        review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as AdmissionReview;
      } catch {
        return reply(400, { error: 'body is not JSON' });
      }
      const request = review.request;
      if (!request?.uid || request.kind?.kind !== 'Pod' || !request.object) return reply(400, { error: 'expected an AdmissionReview v1 for a Pod' });
      let mutation: Mutation;
      try {
        mutation = mutate(request.object, request.namespace ?? request.object.metadata?.namespace ?? '', options);
      } catch (err) {
        // A bug must not let a pod through unmutated silently: refuse it, and say so in the log.
        options.log.warn({ err: (err as Error).message }, 'mutation failed');
        mutation = { kind: 'refuse', message: 'keyhold: internal error while injecting; see the webhook log' };
      }
      const pod = request.object.metadata;
      options.log.info({ namespace: request.namespace, pod: pod?.name ?? pod?.generateName, decision: mutation.kind, ...(mutation.kind === 'skip' ? { reason: mutation.reason } : {}) }, 'admission');
      reply(200, admissionResponse(request.uid, mutation));
    });
  });
  // A new certificate applies to new connections; connections already open keep theirs.
  options.tls.onChange((material) => {
    server.setSecureContext({ ...material, minVersion: 'TLSv1.2' });
    options.log.info({}, 'serving certificate reloaded');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.listen.port, options.listen.host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://${options.listen.host}:${port}`,
    close: () => new Promise<void>((resolve) => {
      options.tls.stop();
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
