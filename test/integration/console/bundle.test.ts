/**
 * The built console (dist/ui, from scripts/build.sh) as shipped: the size of a small app, nothing
 * inline that the CSP would have to allow, and no use of web storage anywhere in its code.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { describe, it } from 'node:test';

const UI = resolve(fileURLToPath(import.meta.url), '../../../../ui');
/** ui/src of the repository (this file is dist/test/integration/console/bundle.test.js). */
const SOURCES = resolve(fileURLToPath(import.meta.url), '../../../../../ui/src');

describe('the built web console', () => {
  it('is a small app: its JavaScript is under 60 KB gzipped, as scripts/build.sh recorded', () => {
    const js = readFileSync(resolve(UI, 'app.js'));
    const gzipped = gzipSync(js, { level: 9 }).length;
    assert.ok(gzipped < 60 * 1024, `app.js is ${gzipped} bytes gzipped`);
    const recorded = JSON.parse(readFileSync(resolve(UI, 'size.json'), 'utf8')) as { js_bytes: number; js_gzip_bytes: number };
    assert.equal(recorded.js_bytes, js.length, 'size.json is not of this build');
    assert.ok(Math.abs(recorded.js_gzip_bytes - gzipped) < 512, `size.json says ${recorded.js_gzip_bytes}, measured ${gzipped}`);
  });

  it('has no inline script, handler or style for the CSP to allow', () => {
    const html = readFileSync(resolve(UI, 'index.html'), 'utf8');
    for (const tag of html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)) {
      assert.match(tag[1] as string, /\bsrc="[^"]+"/, `an inline <script>: ${tag[0].slice(0, 80)}`);
      assert.equal((tag[2] as string).trim(), '', 'a <script src> with a body');
    }
    assert.doesNotMatch(html, /<style\b|\sstyle=|\son[a-z]+=/i, 'inline style or event handler in index.html');
    assert.doesNotMatch(html, /https?:\/\//, 'index.html loads something from another origin');
  });

  it('never touches localStorage or sessionStorage, and builds no code from strings', () => {
    const js = readFileSync(resolve(UI, 'app.js'), 'utf8');
    assert.ok(!/localStorage|sessionStorage|indexedDB/.test(js), 'web storage in the console code');
    assert.ok(!/\beval\(|new Function\(|document\.write\(/.test(js), 'code built from strings');
    // Preact escapes what it renders; the console's own code never hands it raw HTML.
    for (const file of readdirSync(SOURCES, { recursive: true, encoding: 'utf8' }).filter((f) => /\.tsx?$/.test(f))) {
      assert.ok(!/dangerouslySetInnerHTML|innerHTML/.test(readFileSync(resolve(SOURCES, file), 'utf8')), `raw HTML in ui/src/${file}`);
    }
  });
});
