/**
 * Sign-in: an operator's password and TOTP code, single sign-on when OIDC is configured, and, for
 * the first operator's creation only, a session from the root token. Every way ends with the
 * token in the HttpOnly session cookie: this page only ever sees the CSRF token.
 */
import { useEffect, useState } from 'preact/hooks';
import { api, describeError, setCsrf } from '../api';
import { Field, Message } from '../components';
import { LOGIN_ROUTES, ssoErrorFromHash } from '../logins';

export function Login({ onSignedIn, notice }: { onSignedIn: () => void; notice?: string }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | undefined>(() => ssoErrorFromHash(location.hash));
  const [busy, setBusy] = useState(false);
  const [sso, setSso] = useState(false);

  useEffect(() => {
    LOGIN_ROUTES.ssoAvailable().then(setSso, () => setSso(false));
  }, []);

  const run = async (login: () => Promise<{ csrf_token: string }>) => {
    setBusy(true);
    setError(undefined);
    try {
      const { csrf_token } = await login();
      setCsrf(csrf_token);
      onSignedIn();
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
      setPassword('');
      setCode('');
      setToken('');
    }
  };

  const operatorLogin = (e: Event) => {
    e.preventDefault();
    void run(() => LOGIN_ROUTES.operator(username, password, code));
  };
  const tokenLogin = (e: Event) => {
    e.preventDefault();
    // The token goes to the server once, as a bearer header; it is not kept anywhere.
    void run(async () => (await api<{ csrf_token: string }>('POST', '/v1/auth/token/session', undefined, { authorization: `Bearer ${token.trim()}` })).body);
  };

  return (
    <main id="main" class="login">
      <h1>keyhold console</h1>
      {notice && <Message kind="info">{notice}</Message>}
      {error && <Message kind="error" id="login-error">{error}</Message>}
      <section aria-labelledby="operator-h">
        <h2 id="operator-h">Operator sign-in</h2>
        <form onSubmit={operatorLogin}>
          <Field label="Username" name="username" value={username} onInput={setUsername} autocomplete="username" required autoFocus />
          <Field label="Password" name="password" type="password" value={password} onInput={setPassword} autocomplete="current-password" required />
          <Field label="Authenticator code" name="code" value={code} onInput={setCode} autocomplete="one-time-code" inputMode="numeric" required
            hint="The 6-digit code from your authenticator app, or a recovery code." />
          <button type="submit" disabled={busy}>Sign in</button>
        </form>
      </section>
      {sso && (
        <section aria-labelledby="sso-h">
          <h2 id="sso-h">Single sign-on</h2>
          <button type="button" onClick={() => { setError(undefined); LOGIN_ROUTES.ssoStart().catch((err: unknown) => setError(describeError(err))); }} disabled={busy}>Sign in with SSO</button>
        </section>
      )}
      <p><a href="#/enrol">First sign-in? Set up your authenticator</a></p>
      <section aria-labelledby="token-h">
        <details>
          <summary id="token-h">Bootstrap: sign in with a token</summary>
          <p class="muted">For the root token's holder, to create the first operator accounts. The session holds a one-hour child of the token; logging out revokes that child only.</p>
          <form onSubmit={tokenLogin}>
            <Field label="Token" name="token" type="password" value={token} onInput={setToken} autocomplete="off" required />
            <button type="submit" disabled={busy}>Start session with token</button>
          </form>
        </details>
      </section>
    </main>
  );
}
