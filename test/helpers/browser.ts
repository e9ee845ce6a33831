/**
 * A real Chromium for the console's tests: Debian's /usr/bin/chromium driven by playwright-core
 * (no browser download). Each test file launches one browser and closes it in its `after` hook
 * (closeBrowsers also runs at process exit as a last resort). axe-core is injected through the
 * DevTools protocol (page.evaluate), which the page's CSP does not govern, so the console's strict
 * CSP stays exactly as served while it is checked.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = process.env.KEYHOLD_CHROMIUM ?? '/usr/bin/chromium';
/** docs/screenshots of the repository, from this compiled file (dist/test/helpers/browser.js). */
export const SCREENSHOT_DIR = resolve(fileURLToPath(import.meta.url), '../../../../docs/screenshots');

const open = new Set<Browser>();
let axeSource: string | undefined;

export async function launchBrowser(): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Chromium's sandbox cannot start as root (the test containers run as root); never otherwise.
    args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
  });
  open.add(browser);
  browser.on('disconnected', () => open.delete(browser));
  return browser;
}

/** A fresh browser context: its own cookie jar and storage, as a second person's browser would be. */
export function newContext(browser: Browser, baseURL?: string): Promise<BrowserContext> {
  return browser.newContext({ ...(baseURL ? { baseURL } : {}), viewport: { width: 1280, height: 860 }, locale: 'en-GB', timezoneId: 'UTC' });
}

export async function closeBrowsers(): Promise<void> {
  await Promise.all([...open].map((b) => b.close().catch(() => undefined)));
}
process.once('exit', () => { for (const b of open) void b.close().catch(() => undefined); });

/** axe-core into the page (once per document). */
export async function injectAxe(page: Page): Promise<void> {
  if (await page.evaluate(() => typeof (globalThis as { axe?: unknown }).axe === 'object')) return;
  axeSource ??= readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
  await page.evaluate(axeSource);
}

interface AxeViolation { id: string; impact?: string; help: string; nodes: Array<{ target: unknown; failureSummary?: string }> }

/** Runs axe-core (WCAG 2.0/2.1 A and AA, and best practices) on the page as it is now; fails listing every violation. */
export async function expectNoAxeViolations(page: Page, what = page.url()): Promise<void> {
  await injectAxe(page);
  const violations = await page.evaluate(async () => {
    const axe = (globalThis as unknown as { axe: { run: (ctx: Document, opts: unknown) => Promise<{ violations: AxeViolation[] }> } }).axe;
    const result = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] }, resultTypes: ['violations'] });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({ target: n.target, failureSummary: n.failureSummary })) }));
  });
  assert.deepEqual(violations, [], `axe-core violations on ${what}:\n${violations.map((v) => `- ${v.id} (${v.impact}): ${v.help}\n  ${v.nodes.map((n) => `${JSON.stringify(n.target)} ${n.failureSummary ?? ''}`).join('\n  ')}`).join('\n')}`);
}

/** Saves the page as docs/screenshots/<name>.png (committed: the README shows some). */
export async function screenshot(page: Page, name: string, fullPage = true): Promise<string> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const file = resolve(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage, animations: 'disabled' });
  return file;
}

/** What the page's scripts could read from web storage: the console must keep nothing there. */
export function webStorage(page: Page): Promise<{ local: Record<string, string>; session: Record<string, string> }> {
  return page.evaluate(() => {
    const dump = (s: Storage) => Object.fromEntries(Array.from({ length: s.length }, (_, i) => s.key(i) as string).map((k) => [k, s.getItem(k) ?? '']));
    return { local: dump(localStorage), session: dump(sessionStorage) };
  });
}
