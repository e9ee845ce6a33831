import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, it } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { listAndWatch } from '../../../src/hsm/kube-watch.js';
import { pollUntil } from '../../helpers/wait.js';

describe('listAndWatch', () => {
  it('keeps listing after failures, with no abort listener left behind per pause, and ends on abort', async () => {
    const abort = new AbortController();
    let failures = 0;
    const loop = listAndWatch(new KubeConfig(), '/api/v1/namespaces/x/configmaps', () => Promise.reject(new Error('unreachable')), {
      onList: () => assert.fail('nothing was listed'),
      onEvent: () => assert.fail('nothing was watched'),
      onError: () => { failures++; },
    }, abort.signal, { retryMs: 1, maxRetryMs: 1 });
    await pollUntil('many failed lists', () => failures >= 20, { timeoutMs: 5000, intervalMs: 5 });
    assert.ok(getEventListeners(abort.signal, 'abort').length <= 1, `abort listeners: ${getEventListeners(abort.signal, 'abort').length}`);
    abort.abort();
    await loop;
  });
});
