import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { canonicalJson } from '../../../src/audit/canonical.js';
import { entryHash, sealEntry, serializeEntry, type AuditEntry } from '../../../src/audit/entry.js';

function randomString(): string {
  const alphabet = ['a', 'Z', '"', '\\', '\n', 'é', '𝄞', '\u0000', ' ', '/', ':'];
  return Array.from({ length: Math.floor(Math.random() * 12) }, () => alphabet[Math.floor(Math.random() * alphabet.length)]).join('');
}

function randomEntry(seq: number): AuditEntry {
  const entry: AuditEntry = {
    seq, time: new Date(1_700_000_000_000 + seq).toISOString(), prev: randomBytes(32).toString('hex'),
    type: Math.random() < 0.5 ? 'request' : 'response', requestId: randomString() || 'r', operation: randomString(), path: randomString(),
  };
  if (Math.random() < 0.7) {
    entry.actor = {};
    if (Math.random() < 0.5) entry.actor.accessor = randomString();
    if (Math.random() < 0.5) entry.actor.tokenId = randomString();
    if (Math.random() < 0.5) entry.actor.policies = [randomString(), randomString()];
    if (Math.random() < 0.3) entry.actor.selectors = [randomString()];
  }
  if (Math.random() < 0.5) entry.outcome = { status: Math.floor(Math.random() * 600), ...(Math.random() < 0.5 ? { code: randomString() } : {}) };
  if (Math.random() < 0.5) entry.fields = Object.fromEntries(Array.from({ length: Math.floor(Math.random() * 5) }, () => [randomString(), randomString()]));
  return entry;
}

describe('the specialised entry serialiser', () => {
  it('is byte-identical to canonicalJson for 2,000 random entries, with and without hash', () => {
    for (let i = 1; i <= 2000; i++) {
      const entry = randomEntry(i);
      assert.equal(serializeEntry(entry), canonicalJson(entry));
      const { sealed, line } = sealEntry(entry);
      assert.equal(line, canonicalJson(sealed));
      assert.equal(sealed.hash, entryHash(sealed));
    }
  });
});
