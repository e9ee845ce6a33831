import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { inspect } from 'node:util';
import { isKeyholdError } from '../../../src/errors.js';
import { canonicalJson } from '../../../src/audit/canonical.js';
import { entryHash, GENESIS_HASH, sealEntry, type AuditHead, type SealedAuditEntry } from '../../../src/audit/entry.js';
import { FileAuditLog } from '../../../src/audit/file-log.js';
import { AuditHmac } from '../../../src/audit/hmac.js';
import { verifyAuditFile, type AuditVerifyResult } from '../../../src/audit/verify.js';
import { tempDir } from '../../helpers/temp.js';

const root = tempDir('keyhold-audit-verify-');
after(() => fs.rmSync(root, { recursive: true, force: true }));
let fileCounter = 0;
const newFile = (): string => path.join(root, `audit-${++fileCounter}.log`);

const ENTRIES = 5;
const MIDDLE = 3; // seq (and line number) of the entry we tamper with
let original: Buffer;
let head: AuditHead;

/** Byte offsets [start, end) of each line, the end including its newline. */
function lineRanges(buf: Buffer): [number, number][] {
  const ranges: [number, number][] = [];
  for (let start = 0; start < buf.length; ) {
    const nl = buf.indexOf(0x0a, start);
    const end = nl === -1 ? buf.length : nl + 1;
    ranges.push([start, end]);
    start = end;
  }
  return ranges;
}

function linesOf(buf: Buffer): string[] {
  return buf.toString('utf8').split('\n').slice(0, -1);
}

async function verifyContent(content: Buffer | string, expected?: AuditHead): Promise<AuditVerifyResult> {
  const file = newFile();
  fs.writeFileSync(file, content);
  return verifyAuditFile(file, expected);
}

function assertFailsAt(result: AuditVerifyResult, seq: number, context = ''): void {
  assert.equal(result.ok, false, `expected failure ${context}`);
  if (result.ok) return;
  assert.equal(result.badSeq, seq, `${context}: ${result.reason}`);
  assert.equal(result.line, seq, context);
  assert.equal(result.entries, seq - 1, context);
}

before(async () => {
  const file = newFile();
  const hmac = new AuditHmac(Buffer.alloc(32, 7));
  const log = await FileAuditLog.open(file);
  for (let i = 1; i <= ENTRIES; i++) {
    await log.append({
      type: 'request',
      requestId: `req-${i}`,
      actor: { accessor: `kha.${i}`, tokenId: `t-${i}`, policies: ['dev', 'ops'], selectors: ['ns=payments'] },
      operation: 'keys.encrypt',
      path: 'keys/payments',
      outcome: { status: 200, code: 'OK' },
      // Multi-byte characters so byte flips also land inside UTF-8 sequences.
      fields: { note: `naïve ✓ 🔑 ${i}`, plaintext: hmac.mac(`secret-${i}`), quote: 'a"b\\c\n' },
    });
  }
  head = log.head;
  await log.close();
  original = fs.readFileSync(file);
});

describe('verifyAuditFile', () => {
  it('accepts an intact log and an empty one', async () => {
    assert.deepEqual(await verifyContent(original), { ok: true, entries: ENTRIES, lastHash: head.hash });
    assert.deepEqual(await verifyContent(original, head), { ok: true, entries: ENTRIES, lastHash: head.hash });
    assert.deepEqual(await verifyContent(''), { ok: true, entries: 0, lastHash: GENESIS_HASH });
  });

  it('pinpoints the altered entry for a change of every single byte of it', async () => {
    const [start, end] = lineRanges(original)[MIDDLE - 1] ?? [0, 0];
    assert.ok(end - start > 300, 'the chosen entry should be reasonably long');
    let tried = 0;
    for (const mask of [0x01, 0x20]) {
      for (let pos = start; pos < end; pos++) {
        const copy = Buffer.from(original);
        copy[pos] = (copy[pos] ?? 0) ^ mask;
        if (copy[pos] === 0x0a) continue; // would just split the line; not a single-entry edit
        assertFailsAt(await verifyContent(copy), MIDDLE, `byte ${pos - start} ^ 0x${mask.toString(16)}`);
        tried += 1;
      }
    }
    assert.ok(tried >= 2 * (end - start) - 2);
  });

  it('rejects an equivalent but non-canonical spelling of an entry', async () => {
    const lines = linesOf(original);
    const entry = JSON.parse(lines[MIDDLE - 1] ?? '') as SealedAuditEntry;
    lines[MIDDLE - 1] = JSON.stringify(entry).replace('"seq":', '"seq": ');
    const spaced = await verifyContent(`${lines.join('\n')}\n`);
    assertFailsAt(spaced, MIDDLE);
    const { seq, ...rest } = entry; // same content, 'seq' moved to the end
    lines[MIDDLE - 1] = JSON.stringify({ ...rest, seq });
    const result = await verifyContent(`${lines.join('\n')}\n`);
    assertFailsAt(result, MIDDLE);
    assert.match(result.ok ? '' : result.reason, /canonical/);
  });

  it('detects removed, swapped and duplicated entries', async () => {
    const lines = linesOf(original);
    const join = (ls: string[]): string => `${ls.map((l) => `${l}\n`).join('')}`;
    assertFailsAt(await verifyContent(join(lines.filter((_, i) => i !== MIDDLE - 1))), MIDDLE, 'removed');
    assertFailsAt(await verifyContent(join(lines.slice(1))), 1, 'removed first');
    const swapped = [...lines];
    [swapped[1], swapped[2]] = [swapped[2] ?? '', swapped[1] ?? ''];
    assertFailsAt(await verifyContent(join(swapped)), 2, 'swapped');
    const duplicated = [...lines.slice(0, 3), lines[2] ?? '', ...lines.slice(3)];
    assertFailsAt(await verifyContent(join(duplicated)), 4, 'duplicated');
  });

  it('an entry re-sealed after editing is caught by the next entry, a rewritten tail by the head', async () => {
    const lines = linesOf(original);
    const reseal = (line: string, change: Partial<SealedAuditEntry>): string => {
      const { hash: _old, ...entry } = JSON.parse(line) as SealedAuditEntry;
      return sealEntry({ ...entry, ...change }).line;
    };
    const forged = [...lines];
    forged[MIDDLE - 1] = reseal(forged[MIDDLE - 1] ?? '', { path: 'keys/other' });
    const result = await verifyContent(`${forged.join('\n')}\n`);
    assertFailsAt(result, MIDDLE + 1);
    assert.match(result.ok ? '' : result.reason, /prev/);
    // Re-sealing every later entry too makes a self-consistent chain that only the kept head exposes.
    for (let i = MIDDLE; i < lines.length; i++) {
      const prev = (JSON.parse(forged[i - 1] ?? '') as SealedAuditEntry).hash;
      forged[i] = reseal(forged[i] ?? '', { prev });
    }
    assert.equal((await verifyContent(`${forged.join('\n')}\n`)).ok, true);
    const withHead = await verifyContent(`${forged.join('\n')}\n`, head);
    assertFailsAt(withHead, ENTRIES);
    assert.match(withHead.ok ? '' : withHead.reason, /rewritten/);
  });

  it('detects a truncated tail only when given the expected head', async () => {
    const ranges = lineRanges(original);
    const truncated = original.subarray(0, ranges[ENTRIES - 2]?.[1]);
    assert.equal((await verifyContent(truncated)).ok, true);
    const result = await verifyContent(truncated, head);
    assertFailsAt(result, ENTRIES);
    assert.match(result.ok ? '' : result.reason, /truncated/);
    assertFailsAt(await verifyContent('', head), 1);
    // A head from earlier in the log's life is fine if that entry is still intact.
    const earlier = { seq: 2, hash: (JSON.parse(linesOf(original)[1] ?? '') as SealedAuditEntry).hash };
    assert.equal((await verifyContent(original, earlier)).ok, true);
    assertFailsAt(await verifyContent(original, { seq: 2, hash: head.hash }), 2);
  });

  it('reports an incomplete final line', async () => {
    const result = await verifyContent(Buffer.concat([original, Buffer.from('{"seq":6')]));
    assertFailsAt(result, ENTRIES + 1);
    assert.match(result.ok ? '' : result.reason, /incomplete final line/);
  });

  it('reads logs larger than one read chunk', async () => {
    const file = newFile();
    const log = await FileAuditLog.open(file);
    await Promise.all(Array.from({ length: 400 }, (_, i) =>
      log.append({ type: 'response', requestId: `r${i}`, operation: 'op', path: 'p', fields: { pad: 'x'.repeat(i * 3) } })));
    const last = log.head;
    await log.close();
    assert.ok(fs.statSync(file).size > 3 * 64 * 1024);
    assert.deepEqual(await verifyAuditFile(file, last), { ok: true, entries: 400, lastHash: last.hash });
  });

  it('throws ERR_AUDIT_UNAVAILABLE for a missing file', async () => {
    await assert.rejects(verifyAuditFile(path.join(root, 'missing.log')), (err: unknown) => isKeyholdError(err, 'ERR_AUDIT_UNAVAILABLE'));
  });
});

describe('audit building blocks', () => {
  it('canonicalJson sorts keys recursively, omits undefined, and refuses what JSON cannot carry', () => {
    assert.equal(canonicalJson({ b: 1, a: { d: [true, null, 'x'], c: 'é' }, u: undefined }), '{"a":{"c":"é","d":[true,null,"x"]},"b":1}');
    assert.equal(canonicalJson({ b: 1, a: 2 }), canonicalJson({ a: 2, b: 1 }));
    for (const bad of [NaN, Infinity, new Date(0), [undefined], () => 1, 1n, Buffer.from('x')]) {
      assert.throws(() => canonicalJson(bad), TypeError);
    }
  });

  it('entryHash ignores the hash field and covers every other field', () => {
    const entry = { seq: 1, time: new Date(0).toISOString(), prev: GENESIS_HASH, type: 'request' as const, requestId: 'r', operation: 'o', path: 'p' };
    const { sealed, line } = sealEntry(entry);
    assert.equal(entryHash(sealed), entryHash(entry));
    assert.equal(line, canonicalJson(sealed));
    assert.notEqual(entryHash({ ...entry, path: 'q' }), sealed.hash);
  });

  it('AuditHmac yields keyed, deterministic hmac-sha256 values and never exposes its key', () => {
    const key = Buffer.alloc(32, 1);
    const hmac = new AuditHmac(key);
    const mac = hmac.mac('s.token-value');
    assert.match(mac, /^hmac-sha256:[0-9a-f]{64}$/);
    assert.equal(hmac.mac(Buffer.from('s.token-value')), mac);
    assert.notEqual(new AuditHmac(Buffer.alloc(32, 2)).mac('s.token-value'), mac);
    assert.equal(hmac.matches('s.token-value', mac), true);
    assert.equal(hmac.matches('other', mac), false);
    assert.equal(hmac.matches('s.token-value', 'short'), false);
    key.fill(0); // the caller wiping its copy must not change the MACs
    assert.equal(hmac.mac('s.token-value'), mac);
    const hexKey = Buffer.alloc(32, 1).toString('hex');
    assert.ok(!JSON.stringify(hmac).includes(hexKey) && !inspect(hmac, { showHidden: true }).includes('0101'));
    assert.throws(() => new AuditHmac(Buffer.alloc(16)), (err: unknown) => isKeyholdError(err, 'ERR_CONFIG'));
  });
});
