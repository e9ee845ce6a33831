/**
 * Serves the web console (the SPA built from ui/ into dist/ui by scripts/build.sh) at /ui/, with
 * a strict Content-Security-Policy. Everything here is static and public: the console then calls
 * the same /v1 API as everyone else, with the session cookie (session.ts).
 *
 * Helmet and @fastify/static live in their own encapsulated context: their hooks run for the
 * console's files only, never on the API's per-request path. server.ts installs this before its
 * guard (onRoute), so these routes are not wrapped by authentication or audit.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';

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

export async function installConsole(app: FastifyInstance, options: { enabled: boolean; warn: (message: string) => void }): Promise<void> {
  if (!options.enabled) return;
  if (!existsSync(resolve(UI_DIR, 'index.html'))) {
    options.warn(`web console not built (${UI_DIR} has no index.html): run scripts/build.sh; /ui is not served`);
    return;
  }
  await app.register(async (ui) => {
    // Static files: public (no token, no audit record) — server.ts's onRequest reads this flag.
    ui.addHook('onRoute', (route) => {
      route.config = { ...(route.config ?? {}), public: true } as typeof route.config;
    });
    const [{ default: helmet }, { default: serveStatic }] = await Promise.all([import('@fastify/helmet'), import('@fastify/static')]);
    await ui.register(helmet, {
      contentSecurityPolicy: CONSOLE_CSP,
      // Same-origin everything; the console is never embedded and never embeds.
      crossOriginEmbedderPolicy: true,
      referrerPolicy: { policy: 'no-referrer' },
    });
    await ui.register(serveStatic, { root: UI_DIR, prefix: '/ui/', index: 'index.html', redirect: true, cacheControl: true, maxAge: 0 });
    ui.get('/', { schema: { hide: true } }, async (_req, reply) => reply.redirect('/ui/'));
  });
}
