/** `keyhold webhook` (serve) and `keyhold webhook manifests`. */
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { KeyholdError } from '../../errors.js';
import { parseListen } from '../../core/config.js';
import { wholeNumber } from '../flags.js';

export interface WebhookFlags {
  listen: string;
  tlsCert?: string;
  tlsKey?: string;
  selfManagedTls?: boolean;
  dnsName: string[];
  webhookConfig: string;
  agentImage: string;
  serverAddress: string;
  refreshSeconds?: string;
  logLevel: string;
}

export async function serveWebhookCommand(flags: WebhookFlags): Promise<void> {
  const { serveWebhook } = await import('../../kubernetes/webhook/server.js');
  const listen = parseListen(flags.listen);
  const logger = pino({ level: flags.logLevel, base: { component: 'webhook' } });
  const { fileTls, selfManagedTls } = await import('../../kubernetes/webhook/tls.js');
  let tls;
  if (flags.selfManagedTls) {
    if (flags.dnsName.length === 0) throw new KeyholdError('ERR_CONFIG', '--self-managed-tls needs --dns-name (e.g. keyhold-webhook.keyhold.svc)');
    const { KubeConfig } = await import('@kubernetes/client-node');
    const { caBundlePublisher } = await import('../../kubernetes/webhook/registration.js');
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromDefault(); // in-cluster service account, or KUBECONFIG
    tls = await selfManagedTls({ dnsNames: flags.dnsName, publishCaBundle: caBundlePublisher(kubeConfig, flags.webhookConfig), log: logger });
  } else {
    if (!flags.tlsCert || !flags.tlsKey) throw new KeyholdError('ERR_CONFIG', 'give --tls-cert and --tls-key, or --self-managed-tls');
    tls = fileTls(flags.tlsCert, flags.tlsKey, 10_000, (m) => logger.warn(m));
  }
  const server = await serveWebhook({
    listen,
    tls,
    agentImage: flags.agentImage, serverAddress: flags.serverAddress,
    ...(flags.refreshSeconds ? { refreshSeconds: wholeNumber('--refresh-seconds', flags.refreshSeconds) } : {}),
    log: logger,
  });
  logger.info({ url: server.url }, 'webhook listening');
  await new Promise<void>((resolve) => {
    const stop = () => void server.close().then(resolve);
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}

export async function printManifests(flags: { namespace: string; service?: string; url?: string; caFile: string }): Promise<void> {
  const { webhookConfiguration } = await import('../../kubernetes/webhook/manifests.js');
  const config = webhookConfiguration({
    namespace: flags.namespace,
    ...(flags.url ? { url: flags.url } : { service: { name: flags.service ?? 'keyhold-webhook' } }),
    caBundlePem: readFileSync(flags.caFile, 'utf8'),
  });
  process.stdout.write(stringify(config));
}
