import type { FastifyInstance } from 'fastify';
import { buildApi } from '../api/server.js';
import type { ServerConfig } from './config.js';
import { parseListen } from './config.js';
import { startRuntime, type Runtime, type StartOptions } from './runtime.js';

export interface RunningServer {
  runtime: Runtime;
  app: FastifyInstance;
  address: string;
  stop(): Promise<void>;
}

/** Unseals, serves, and stops cleanly: in-flight requests finish, the audit log is flushed, the HSM is finalised. */
export async function serve(config: ServerConfig, options: StartOptions & { logStream?: NodeJS.WritableStream } = {}): Promise<RunningServer> {
  // Checked first: a bad address should not cost an HSM login and an unseal.
  const { host, port } = parseListen(config.listen);
  const runtime = await startRuntime(config, options);
  let app: FastifyInstance;
  try {
    app = await buildApi(runtime, { logStream: options.logStream });
    await app.listen({ host, port });
  } catch (err) {
    await runtime.close();
    throw err;
  }
  const bound = app.server.address();
  const address = typeof bound === 'object' && bound ? `http://${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}` : String(bound);
  let stopping: Promise<void> | undefined;
  return {
    runtime,
    app,
    address,
    stop() {
      stopping ??= (async () => {
        await app.close();
        await runtime.close();
      })();
      return stopping;
    },
  };
}

/** Runs until SIGINT/SIGTERM, then stops and resolves. */
export function untilSignal(server: RunningServer): Promise<void> {
  return new Promise((resolve) => {
    const onSignal = () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      void server.stop().then(resolve, (err) => {
        process.stderr.write(`keyhold: error while stopping: ${(err as Error).message}\n`);
        process.exitCode = 1;
        resolve();
      });
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
