/**
 * keyhold's calls to the provider (discovery, token endpoint): bounded in time and size, no
 * redirects followed (an endpoint that moved is a configuration to change, not a hop to trust),
 * and every failure a KeyholdError naming the endpoint: unreachable or too slow is 503
 * ERR_OIDC_PROVIDER_UNREACHABLE, an answer keyhold cannot use is 502 ERR_OIDC_PROVIDER_ERROR.
 * The provider's raw answer is never copied into a message (it could echo a secret).
 */
import { KeyholdError } from '../../errors.js';
import { readCapped } from '../read-capped.js';

/** Longer than any sane provider's answer; shorter than keyhold's own request timeout (30 s). */
export const PROVIDER_TIMEOUT_MS = 10_000;
/** Discovery documents and token responses are a few KiB. */
export const MAX_PROVIDER_ANSWER_BYTES = 256 * 1024;

export interface ProviderAnswer {
  status: number;
  /** The parsed JSON object, or undefined when the answer was not a JSON object. */
  json: Record<string, unknown> | undefined;
}

/** One request to the provider; `what` names the endpoint in errors ("discovery document", "token endpoint"). */
export async function callProvider(url: string, init: { method: 'GET' | 'POST'; headers?: Record<string, string>; body?: string }, what: string): Promise<ProviderAnswer> {
  let text: string;
  let status: number;
  try {
    const response = await fetch(url, {
      method: init.method,
      headers: { accept: 'application/json', ...init.headers },
      ...(init.body !== undefined ? { body: init.body } : {}),
      redirect: 'manual',
      signal: AbortSignal.timeout(PROVIDER_TIMEOUT_MS),
    });
    status = response.status;
    if (status >= 300 && status < 400) {
      await response.body?.cancel();
      throw new KeyholdError('ERR_OIDC_PROVIDER_ERROR', `the ${what} answered a redirect (${status}); keyhold follows none: configure the provider's final URL`);
    }
    text = (await readCapped(response, MAX_PROVIDER_ANSWER_BYTES, (detail) => new KeyholdError('ERR_OIDC_PROVIDER_ERROR', `the ${what} answered more than ${MAX_PROVIDER_ANSWER_BYTES} bytes (${detail})`))).toString('utf8');
  } catch (err) {
    if (err instanceof KeyholdError) throw err;
    const timedOut = (err as Error).name === 'TimeoutError' || (err as Error).name === 'AbortError';
    throw new KeyholdError('ERR_OIDC_PROVIDER_UNREACHABLE', timedOut
      ? `the provider's ${what} did not answer within ${PROVIDER_TIMEOUT_MS / 1000} s`
      : `the provider's ${what} could not be reached`, { cause: err });
  }
  let json: Record<string, unknown> | undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    json = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? parsed as Record<string, unknown> : undefined;
  } catch {
    json = undefined;
  }
  return { status, json };
}
