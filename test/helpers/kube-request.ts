/**
 * Raw REST calls to kube-apiserver for tests that check RBAC verb by verb on arbitrary paths (a
 * generated client has no call for "PATCH this path as that user"): the user's credentials and TLS
 * come from client-node's KubeConfig (applyToHTTPSOptions), the request is node:https.
 */
import { request } from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';

export class KubeRequestError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export type KubeRequest = <T = any>(method: string, path: string, body?: unknown, contentType?: string) => Promise<T>;

export function kubeRequest(kc: KubeConfig): KubeRequest {
  return async (method, path, body, contentType = 'application/json') => {
    const options: Parameters<KubeConfig['applyToHTTPSOptions']>[0] & { headers?: Record<string, string> } = {};
    await kc.applyToHTTPSOptions(options);
    const url = new URL(path, kc.getCurrentCluster()?.server);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = request(url, { ...options, method, headers: { ...options.headers, accept: 'application/json', ...(payload ? { 'content-type': contentType } : {}) } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => { text += d; });
        res.on('end', () => {
          let parsed: any;
          try { parsed = text ? JSON.parse(text) : undefined; } catch { parsed = undefined; }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve(parsed);
          else reject(new KubeRequestError(status, `${method} ${url.pathname}: HTTP ${status}${parsed?.message ? `: ${parsed.message}` : ''}`));
        });
      });
      req.on('error', reject);
      req.end(payload);
    });
  };
}

/** A KubeConfig for a bearer token (a service account's) against the API server of `base`. */
export function tokenKubeConfig(base: KubeConfig, token: string): KubeConfig {
  const cluster = base.getCurrentCluster();
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: cluster?.server ?? '', caData: cluster?.caData, skipTLSVerify: false }],
    users: [{ name: 'u', token }],
    contexts: [{ name: 'c', cluster: 'c', user: 'u' }], currentContext: 'c',
  });
  return kc;
}
