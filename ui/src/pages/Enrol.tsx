/**
 * A new operator's first step, before any session: the password the administrator set, then the
 * TOTP secret as a QR code and otpauth URI (shown once), then a code from the app to confirm,
 * then the recovery codes (shown once). Nothing of it is kept after the page is left.
 */
import { useState } from 'preact/hooks';
import { api, describeError } from '../api';
import { Field, Message } from '../components';

export function Enrol() {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const [secret, setSecret] = useState<{ uri: string; qr: string }>();
  const [recovery, setRecovery] = useState<string[]>();
  const [error, setError] = useState<string>();

  const begin = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    try {
      const { otpauth_uri, qr_svg } = (await api<{ otpauth_uri: string; qr_svg: string }>('POST', '/v1/auth/operator/enrol', { username, password })).body;
      // An <img> of a data: URI (allowed by the CSP's img-src): the SVG is never part of the document.
      setSecret({ uri: otpauth_uri, qr: `data:image/svg+xml;base64,${btoa(qr_svg)}` });
    } catch (err) {
      setError(describeError(err));
    }
  };
  const confirm = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    try {
      const { recovery_codes } = (await api<{ recovery_codes: string[] }>('POST', '/v1/auth/operator/enrol/confirm', { username, password, code: code.trim() })).body;
      setRecovery(recovery_codes);
      setSecret(undefined);
      setPassword('');
    } catch (err) {
      setError(describeError(err));
    } finally {
      setCode('');
    }
  };

  return (
    <main id="main" class="login">
      <h1>Set up your authenticator</h1>
      {error && <Message kind="error">{error}</Message>}
      {!secret && !recovery && (
        <form onSubmit={begin}>
          <p>Sign in with the password your administrator gave you to get your authenticator secret. It is shown once.</p>
          <Field label="Username" name="username" value={username} onInput={setUsername} autocomplete="username" required autoFocus />
          <Field label="Password" name="password" type="password" value={password} onInput={setPassword} autocomplete="current-password" required />
          <button type="submit">Show my authenticator secret</button>
        </form>
      )}
      {secret && (
        <form onSubmit={confirm}>
          <p>Scan this code with your authenticator app, or enter the key by hand. It is shown only now.</p>
          <img class="qr" src={secret.qr} alt="QR code of your authenticator secret" width={220} height={220} />
          <details>
            <summary>Show the key as text</summary>
            <code class="otpauth">{secret.uri}</code>
          </details>
          <Field label="Code from your app" name="code" value={code} onInput={setCode} autocomplete="one-time-code" inputMode="numeric" required />
          <button type="submit">Confirm</button>
        </form>
      )}
      {recovery && (
        <section aria-labelledby="recovery-h">
          <h2 id="recovery-h">Your recovery codes</h2>
          <p>Each works once instead of an authenticator code. Store them somewhere safe now: they are not shown again.</p>
          <ul class="recovery">{recovery.map((r) => <li key={r}><code>{r}</code></li>)}</ul>
          <p><a href="#/">Continue to sign in</a></p>
        </section>
      )}
    </main>
  );
}
