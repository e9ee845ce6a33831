import assert from 'node:assert/strict';
import { rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileTls, issueLeaf, makeAuthority, type TlsMaterial } from '../../../../src/kubernetes/webhook/tls.js';
import { tempDir } from '../../../helpers/temp.js';

describe('webhook TLS from files', () => {
  const dir = tempDir('keyhold-file-tls-');
  after(() => rmSync(dir, { recursive: true, force: true }));
  const certFile = join(dir, 'tls.crt');
  const keyFile = join(dir, 'tls.key');
  const write = (file: string, pem: string, mtime: number) => {
    writeFileSync(file, pem);
    // Distinct mtimes, so the change is seen however coarse the file system's clock is.
    utimesSync(file, mtime, mtime);
  };
  const pair = async (): Promise<TlsMaterial> => issueLeaf(await makeAuthority(3600_000), { dns: ['webhook.test'], ips: ['127.0.0.1'] }, 3600_000);

  it('keeps serving the old pair while a rotation is half done, and takes the new one once it matches', async () => {
    const a = await pair();
    const b = await pair();
    write(certFile, a.cert, 1000);
    write(keyFile, a.key, 1000);
    await sleep(10);
    const warnings: string[] = [];
    const seen: TlsMaterial[] = [];
    const tls = fileTls(certFile, keyFile, 20, (m) => warnings.push(m));
    tls.onChange((m) => seen.push(m));
    try {
      assert.equal(tls.current().cert, a.cert);
      // The new certificate lands before its key: a mismatched pair is not taken.
      write(certFile, b.cert, 2000);
      await sleep(150);
      assert.equal(tls.current().cert, a.cert);
      assert.equal(seen.length, 0);
      assert.ok(warnings.some((w) => /still serving the previous one/.test(w)), warnings.join('\n'));
      // The key follows: now the pair is whole and is taken, once.
      write(keyFile, b.key, 3000);
      await sleep(150);
      assert.equal(tls.current().cert, b.cert);
      assert.equal(tls.current().key, b.key);
      assert.equal(seen.length, 1);
    } finally {
      tls.stop();
    }
  });

  it('refuses to start with a certificate and key that do not match', async () => {
    const a = await pair();
    const b = await pair();
    writeFileSync(certFile, a.cert);
    writeFileSync(keyFile, b.key);
    assert.throws(() => fileTls(certFile, keyFile), /key values mismatch|mismatch/i);
  });
});
