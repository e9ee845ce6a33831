/**
 * The samples docs/kubernetes-injection.md shows of what the webhook produces are checked against
 * the code, so they cannot drift from it again: each is a fenced yaml block after a
 * `<!-- sample: NAME -->` marker. On a mismatch the test fails with the difference and prints what
 * the code produces, ready to paste.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { parse, stringify } from 'yaml';
import { webhookConfiguration } from '../../../../src/kubernetes/webhook/manifests.js';
import { mutate } from '../../../../src/kubernetes/webhook/mutate.js';
import { applyPatch } from '../../../helpers/json-patch.js';

/** The doc, from this compiled file (dist/test/unit/kubernetes/webhook/). */
const DOC = resolve(fileURLToPath(import.meta.url), '../../../../../../docs/kubernetes-injection.md');
/** The options the samples are written for (the doc says so beside them). */
const OPTIONS = { agentImage: '<your keyhold image>', serverAddress: 'https://keyhold.keyhold.svc:8200' };
const CA_BUNDLE = '<base64 of the --ca-file PEM>';

function sample(doc: string, name: string): unknown {
  const found = new RegExp(`<!-- sample: ${name} -->\\s*\`\`\`yaml\\n([\\s\\S]*?)\\n\`\`\``).exec(doc);
  assert.ok(found, `docs/kubernetes-injection.md has no \`<!-- sample: ${name} -->\` followed by a yaml block`);
  return parse(found[1] as string);
}

function assertSame(actual: unknown, documented: unknown, what: string): void {
  try {
    assert.deepStrictEqual(actual, documented);
  } catch (err) {
    (err as Error).message = `${what} in docs/kubernetes-injection.md does not match the code.\n${(err as Error).message}\n\nThe code produces:\n${stringify(actual)}`;
    throw err;
  }
}

describe('docs/kubernetes-injection.md samples match the code', () => {
  const doc = readFileSync(DOC, 'utf8');

  it('the injected pod is what mutate() makes of the input pod', () => {
    const input = sample(doc, 'webhook-input') as V1Pod;
    const mutation = mutate(input, input.metadata?.namespace ?? 'default', OPTIONS);
    assert.equal(mutation.kind, 'patch', JSON.stringify(mutation));
    assertSame(applyPatch(input, (mutation as { patch: Parameters<typeof applyPatch>[1] }).patch), sample(doc, 'webhook-output'), 'The injected pod');
  });

  it('the registration is what `keyhold webhook manifests --namespace keyhold` prints', () => {
    const printed = webhookConfiguration({ namespace: 'keyhold', service: { name: 'keyhold-webhook' }, caBundlePem: 'PEM' }) as { webhooks: Array<{ clientConfig: { caBundle: string } }> };
    for (const w of printed.webhooks) w.clientConfig.caBundle = CA_BUNDLE;
    assertSame(printed, sample(doc, 'webhook-manifests'), 'The MutatingWebhookConfiguration');
  });
});
