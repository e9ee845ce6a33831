/**
 * The audit file copy beside the PostgreSQL table (the second sink): it appends committed lines
 * durably, refuses to reuse a chain's file, and on a full disk stops with one error instead of
 * throwing into the write path (the table holds every entry). A real small tmpfs fills up.
 */
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { AuditFileMirror } from '../../../src/audit/pg-mirror.js';
import { mountTmpfs } from '../../helpers/tmpfs.js';
import { tempDir } from '../../helpers/temp.js';

const CHAIN = 'a'.repeat(32);

describe('AuditFileMirror', () => {
  it('appends committed lines in order to audit-<chain>.log (0600), and will not reuse a chain\'s file', () => {
    const dir = join(tempDir('keyhold-audit-copy-'), 'copies');
    const errors: string[] = [];
    const mirror = AuditFileMirror.open(dir, CHAIN, (m) => errors.push(m));
    mirror.append(['{"seq":1}', '{"seq":2}']);
    mirror.append([]);
    mirror.append(['{"seq":3}']);
    mirror.close();
    const file = join(dir, `audit-${CHAIN}.log`);
    assert.equal(readFileSync(file, 'utf8'), '{"seq":1}\n{"seq":2}\n{"seq":3}\n');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.throws(() => AuditFileMirror.open(dir, CHAIN, () => undefined), /EEXIST/);
    assert.deepEqual(errors, []);
  });

  describe('on a full disk', () => {
    const fs = mountTmpfs(64);
    after(() => fs.unmount());

    it('stops with one error naming ENOSPC, never throws, and ignores later appends', () => {
      const errors: string[] = [];
      const mirror = AuditFileMirror.open(fs.dir, CHAIN, (m) => errors.push(m));
      const line = 'x'.repeat(1000);
      for (let i = 0; i < 200; i++) mirror.append([line]);
      assert.equal(mirror.failed, 'ENOSPC');
      assert.equal(errors.length, 1);
      assert.match(errors[0] as string, /ENOSPC.*PostgreSQL audit table still holds every entry/);
      mirror.append([line]);
      mirror.close();
      assert.equal(errors.length, 1);
    });
  });
});
