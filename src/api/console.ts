/**
 * Serves the web console (the SPA built from ui/ into dist/ui by scripts/build.sh) at /ui/, with
 * a strict Content-Security-Policy. Everything here is static and public: the console then calls
 * the same /v1 API as everyone else, with the session cookie (session.ts).
 *
 * Helmet and @fastify/static live in the console's own small fastify app, built on first use and
 * handed the raw request: their hooks run for the console's files only, never on the API's
 * per-request path, and they are not even loaded until someone opens the console.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** dist/ui, from this compiled file (dist/src/api/console.js). */
export const UI_DIR = resolve(fileURLToPath(import.meta.url), '../../../ui');

/**
 * The console's CSP: only its own script and stylesheet (no inline code of any kind, so an
 * injected <script> or style attribute does nothing), calls to its own origin, no plugins, no
 * framing, no <base> hijack; data: images for the TOTP enrolment QR code.
 */
export const CONSOLE_CSP = {
  useDefaults: false,
  directives: {
    defaultSrc: ["'self'"],
    scriptSrc: ["'self'"],
    styleSrc: ["'self'"],
    imgSrc: ["'self'", 'data:'],
    connectSrc: ["'self'"],
    fontSrc: ["'self'"],
    objectSrc: ["'none'"],
    frameAncestors: ["'none'"],
    baseUri: ["'none'"],
    formAction: ["'self'"],
  },
};

/**
 * The console's own small fastify app (helmet + static), built on the first request for /ui:
 * @fastify/static (with its glob and send) and helmet cost some 6 MB of RSS, which an idle server
 * that nobody opens the console on should not pay.
 */
async function consoleApp(): Promise<FastifyInstance> {
  const [{ default: Fastify }, { default: helmet }, { default: serveStatic }] = await Promise.all([import('fastify'), import('@fastify/helmet'), import('@fastify/static')]);
  const ui = Fastify({ logger: false, return503OnClosing: true });
  await ui.register(helmet, {
    contentSecurityPolicy: CONSOLE_CSP,
    // Same-origin everything; the console is never embedded and never embeds.
    crossOriginEmbedderPolicy: true,
    referrerPolicy: { policy: 'no-referrer' },
  });
  await ui.register(serveStatic, { root: UI_DIR, prefix: '/ui/', index: 'index.html', redirect: true, cacheControl: true, maxAge: 0 });
  // keyhold's error shape for a missing file, as for every other 404.
  ui.setNotFoundHandler((request, reply) => reply.code(404).send({ error: { code: 'ERR_NOT_FOUND', message: `no file ${request.url.split('?')[0]}` }, request_id: randomUUID() }));
  await ui.ready();
  return ui;
}

export async function installConsole(app: FastifyInstance, options: { enabled: boolean; warn: (message: string) => void }): Promise<void> {
  if (!options.enabled) return;
  if (!existsSync(resolve(UI_DIR, 'index.html'))) {
    options.warn(`web console not built (${UI_DIR} has no index.html): run scripts/build.sh; /ui is not served`);
    return;
  }
  let built: Promise<FastifyInstance> | undefined;
  // Public (no token, no audit record: static files); the console app answers on the raw request.
  const serve = (request: FastifyRequest, reply: FastifyReply) => {
    built ??= consoleApp().catch((err: unknown) => {
      built = undefined;
      throw err;
    });
    return built.then((ui) => {
      reply.hijack();
      ui.routing(request.raw, reply.raw);
    });
  };
  const config = { public: true } as const;
  // The app's asset paths are relative to /ui/: /ui itself only redirects there.
  app.get('/ui', { schema: { hide: true }, config }, async (_request, reply) => reply.redirect('/ui/'));
  app.get('/ui/*', { schema: { hide: true }, config }, serve);
}
