/** Wires a running KMS v2 plugin: root key (direct or server mode) → local KEKs → gRPC socket, plus health and metrics. */
import type { Logger } from 'pino';
import { KeyholdClient } from '../../client/client.js';
import { memberConfigs, resolvePin, type HsmSettings } from '../../hsm/config.js';
import { RootKeyConnector } from './connector.js';
import { DirectRootKey } from './direct-root-key.js';
import { serveGrpc } from './grpc-server.js';
import { serveHealth } from './health-http.js';
import { KmsService } from './kms-service.js';
import type { LocalKekOptions } from './local-kek.js';
import { KmsMetrics } from './metrics.js';
import type { RootKey } from './root-key.js';
import { ServerRootKey } from './server-root-key.js';
import { parseSocketAddress, type SocketAddress } from './socket.js';

export type RootKeySource =
  | { mode: 'direct'; hsm: HsmSettings; keyLabel: string }
  | { mode: 'server'; address: string; token: string; keyName: string };

export interface KmsPluginOptions {
  listen: string;
  healthListen?: string;
  rootKey: RootKeySource;
  kek?: Omit<LocalKekOptions, 'events'>;
  statusDeadlineMs?: number;
  /** How long a look-up of the root key's versions is reused (ms). */
  rootKeyRefreshMs?: number;
  backoff?: { minMs?: number; maxMs?: number; pinRecheckMs?: number };
  logger: Logger;
}

export interface RunningKmsPlugin {
  socket: SocketAddress;
  healthUrl: string | undefined;
  service: KmsService;
  metrics: KmsMetrics;
  close(): Promise<void>;
}

function opener(source: RootKeySource, refreshMs: number | undefined, logger: Logger): () => Promise<RootKey> {
  if (source.mode === 'server') {
    const client = new KeyholdClient({ address: source.address, token: source.token, timeoutMs: 2500 });
    return async () => new ServerRootKey(client, source.keyName, source.address, { refreshMs });
  }
  return async () => {
    // Loaded here so server mode never loads the native PKCS#11 addon.
    const { openHsm } = await import('../../hsm/open.js');
    const hsm = await openHsm(source.hsm, { warn: (message) => logger.warn(message) });
    try {
      return await DirectRootKey.open(hsm, source.keyLabel, { refreshMs });
    } catch (err) {
      await hsm.close();
      throw err;
    }
  };
}

export async function startKmsPlugin(options: KmsPluginOptions): Promise<RunningKmsPlugin> {
  const { logger } = options;
  const socket = parseSocketAddress(options.listen);
  const source = options.rootKey;
  const connector = new RootKeyConnector({
    open: opener(source, options.rootKeyRefreshMs, logger),
    // Every member's PIN (a cluster may give each its own source); with an endpoint file, the template's.
    readPin: source.mode === 'direct' ? () => memberConfigs(source.hsm.memberTemplate ?? source.hsm).map((m) => resolvePin(m)).join('\n') : undefined,
    log: logger,
    minBackoffMs: options.backoff?.minMs,
    maxBackoffMs: options.backoff?.maxMs,
    pinRecheckMs: options.backoff?.pinRecheckMs,
  });
  // The metrics read the service, which reports its KEK events to the metrics: tie the knot through a holder.
  const holder: { service?: KmsService } = {};
  const metrics = new KmsMetrics({
    rootCalls: () => holder.service?.rootCalls ?? 0,
    kekUses: () => holder.service?.kekUses ?? 0,
    healthy: async () => (await holder.service?.status())?.healthz === 'ok',
  });
  const service = new KmsService(connector, {
    statusDeadlineMs: options.statusDeadlineMs,
    kek: {
      ...options.kek,
      events: {
        ...metrics.kekEvents,
        rotated: (reason, keyId) => {
          metrics.kekEvents.rotated?.(reason, keyId);
          logger.info({ reason, keyId }, 'new local KEK');
        },
        rotationFailed: (reason, err) => {
          metrics.kekEvents.rotationFailed?.(reason, err);
          logger.error({ reason, err: (err as Error).message }, 'making a new local KEK failed; the current one stays in use');
        },
      },
    },
  });
  holder.service = service;
  await connector.start();
  const grpcServer = await serveGrpc(service, socket, metrics, logger).catch(async (err: unknown) => {
    await connector.close();
    throw err;
  });
  const health = options.healthListen ? await serveHealth(options.healthListen, service, metrics).catch(async (err: unknown) => {
    await grpcServer.close();
    await connector.close();
    throw err;
  }) : undefined;
  logger.info({ socket: socket.endpoint, health: health?.url, mode: source.mode }, 'KMS v2 plugin listening');
  let closing: Promise<void> | undefined;
  return {
    socket,
    healthUrl: health?.url,
    service,
    metrics,
    close() {
      closing ??= (async () => {
        await grpcServer.close();
        await health?.close();
        await connector.close();
      })();
      return closing;
    },
  };
}
