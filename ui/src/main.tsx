/**
 * The keyhold web console: a small Preact app with hash routing (#/keys, #/secrets/…), so the
 * server serves one static index for every page and no route is ever guessed by the server.
 */
import { Fragment, render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, setCsrf, whenUnauthenticated } from './api';
import { ApprovalPolicyDetails, ApprovalPolicyList } from './pages/ApprovalPolicies';
import { Approvals } from './pages/Approvals';
import { Audit } from './pages/Audit';
import { KeyDetails, KeyList } from './pages/Keys';
import { Kubernetes } from './pages/Kubernetes';
import { Enrol } from './pages/Enrol';
import { GroupDetails, GroupList } from './pages/Groups';
import { OperatorDetails, OperatorList } from './pages/Operators';
import { PolicyDetails, PolicyList } from './pages/Policies';
import { Login } from './pages/Login';
import { Overview } from './pages/Overview';
import { SecretFolder, SecretView } from './pages/Secrets';
import type { Session } from './types';

const NAV: Array<[string, string]> = [
  ['#/overview', 'Overview'], ['#/keys', 'Keys'], ['#/secrets', 'Secrets'], ['#/approvals', 'Approvals'], ['#/audit', 'Audit'], ['#/kubernetes', 'Kubernetes'],
  ['#/operators', 'Operators'], ['#/groups', 'Groups'], ['#/policies', 'Policies'], ['#/approval-policies', 'Approval policies'],
];

function useHash(): string {
  const [hash, setHash] = useState(location.hash || '#/overview');
  useEffect(() => {
    const on = () => setHash(location.hash || '#/overview');
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash;
}

function decode(part: string): string {
  try {
    return part.split('/').map(decodeURIComponent).join('/');
  } catch {
    return part;
  }
}

/** The page for a hash, and its title. */
function page(hash: string, me: string): [string, preact.JSX.Element] {
  const path = hash.replace(/^#\/?/, '');
  const [section = 'overview', ...rest] = path.split('/');
  const tail = decode(rest.join('/'));
  switch (section) {
    case 'keys': return tail ? [`Key ${tail}`, <KeyDetails name={tail} />] : ['Keys', <KeyList />];
    case 'secrets':
      return tail === '' || tail.endsWith('/') ? ['Secrets', <SecretFolder folder={tail.replace(/\/$/, '')} />] : [`Secret ${tail}`, <SecretView path={tail} />];
    case 'approvals': return ['Approvals', <Approvals me={me} />];
    case 'audit': return ['Audit log', <Audit />];
    case 'kubernetes': return ['Kubernetes', <Kubernetes />];
    case 'operators': return tail ? [`Operator ${tail}`, <OperatorDetails name={tail} />] : ['Operators', <OperatorList />];
    case 'groups': return tail ? [`Group ${tail}`, <GroupDetails name={tail} />] : ['Groups', <GroupList />];
    case 'policies': return tail ? [`Policy ${tail}`, <PolicyDetails name={tail} />] : ['Policies', <PolicyList />];
    case 'approval-policies': return tail ? [`Approval policy ${tail}`, <ApprovalPolicyDetails name={tail} />] : ['Approval policies', <ApprovalPolicyList />];
    default: return ['Overview', <Overview />];
  }
}

function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [notice, setNotice] = useState<string>();
  const hash = useHash();
  const heading = useRef<HTMLHeadingElement>(null);
  // Set on sign-in and on a page change (not on the first load): then focus moves to the heading.
  const moveFocus = useRef(false);

  const loadSession = () => api<Session>('GET', '/v1/auth/session').then((a) => {
    setCsrf(a.body.csrf_token ?? null);
    setSession(a.body);
  }, () => {
    setCsrf(null);
    setSession(null);
  });
  useEffect(() => {
    whenUnauthenticated(() => {
      setCsrf(null);
      setSession(null);
      setNotice('Your session has ended. Sign in again.');
    });
    void loadSession();
  }, []);
  // A page change moves focus to its heading, so keyboard and screen-reader users land on it.
  useEffect(() => { moveFocus.current = true; }, [hash]);
  useEffect(() => {
    if (moveFocus.current && heading.current) {
      heading.current.focus();
      moveFocus.current = false;
    }
  });
  useEffect(() => { moveFocus.current = false; }, []);

  const logout = async () => {
    try {
      await api('POST', '/v1/auth/logout');
    } finally {
      setCsrf(null);
      setSession(null);
      setNotice('Signed out.');
    }
  };

  if (session === undefined) return <main id="main"><p role="status">Loading…</p></main>;
  if (session === null && hash.startsWith('#/enrol')) return <Enrol />;
  if (session === null) return <Login notice={notice} onSignedIn={() => { setNotice(undefined); moveFocus.current = true; void loadSession(); }} />;
  const [title, content] = page(hash, session.identity);
  const current = `#/${hash.replace(/^#\/?/, '').split('/')[0] || 'overview'}`;
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); heading.current?.focus(); }}>Skip to content</a>
      <header class="top">
        <span class="brand">keyhold</span>
        <nav aria-label="Main">
          <ul>
            {NAV.map(([href, label]) => <li key={href}><a href={href} aria-current={current === href ? 'page' : undefined}>{label}</a></li>)}
          </ul>
        </nav>
        <div class="who">
          <span id="identity">{session.identity}</span>
          <button type="button" class="secondary" onClick={() => void logout()}>Sign out</button>
        </div>
      </header>
      <main id="main">
        <h1 tabIndex={-1} ref={heading}>{title}</h1>
        {/* Keyed by the page: from one record to another, no form keeps the previous record's values. */}
        <Fragment key={hash}>{content}</Fragment>
      </main>
    </>
  );
}

const root = document.getElementById('app');
if (root) render(<App />, root);
