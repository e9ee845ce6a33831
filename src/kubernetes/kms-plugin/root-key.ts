/**
 * The key the plugin's local KEKs are wrapped under: an AES key in the HSM (direct mode) or a key
 * of a keyhold server (server mode). Versioned; each version has its own key_id.
 */
export interface RootKeyVersion {
  version: number;
  keyId: string;
}

export interface RootKeyHealth {
  ok: boolean;
  error?: string;
}

export interface RootKey {
  /** For logs: which HSM token or server, which key (never a secret). */
  readonly description: string;
  /** The newest version. Looked up again when the last look-up is older than the refresh interval, or when forced. */
  latest(force?: boolean): Promise<RootKeyVersion>;
  /** Wraps a local KEK under the newest version; returns the wrapping and the key_id of the version used. */
  wrap(kek: Buffer): Promise<{ wrapped: Buffer; keyId: string }>;
  /** Unwraps a KEK wrapped under the version named by keyId; ERR_KEY_VERSION_NOT_FOUND for a key_id it does not know. */
  unwrap(keyId: string, wrapped: Buffer): Promise<Buffer>;
  /**
   * Throws (with the same error an unwrap would give) when the key_id's version was retired, as of
   * the last look-up (Status forces one). A KEK cached under a retired version must stop working.
   */
  assertUsable?(keyId: string): void;
  /**
   * True when the key holds something that dies with its backend (PKCS#11 sessions and object
   * handles), so a key that stays unhealthy must be closed and opened again. A keyhold server key
   * holds nothing: reopening it would change nothing, so it is left to recover by itself.
   */
  readonly reopenWhenLost: boolean;
  /** Cheap (cached): does the HSM or server answer? */
  health(): Promise<RootKeyHealth>;
  /** Calls made to the HSM or the server (each one a round trip the hot path should not make). */
  readonly calls: number;
  close(): Promise<void>;
}

/** Fixed AAD for wrapping local KEKs, so a root-key ciphertext made for another purpose cannot be passed off as a KEK. */
export const KEK_WRAP_CONTEXT = Buffer.from('keyhold kms local kek v1');
