/** Small building blocks every page uses: loading state, messages, labelled fields, badges. */
import type { ComponentChildren, InputHTMLAttributes } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { describeError } from './api';

export interface Loaded<T> {
  data: T | undefined;
  error: string | undefined;
  loading: boolean;
  reload: () => void;
}

/** Runs `load` on mount and whenever `deps` change; `reload` runs it again. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[] = []): Loaded<T> {
  const [state, setState] = useState<{ data?: T; error?: string; loading: boolean }>({ loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    load().then((data) => { if (live) setState({ data, loading: false }); }, (err: unknown) => { if (live) setState({ error: describeError(err), loading: false }); });
    return () => { live = false; };
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data: state.data, error: state.error, loading: state.loading, reload };
}

export function Message({ kind, children, id }: { kind: 'error' | 'info' | 'success'; children: ComponentChildren; id?: string }) {
  // Errors interrupt (alert); the rest is announced politely.
  return <div id={id} class={`message message-${kind}`} role={kind === 'error' ? 'alert' : 'status'}>{children}</div>;
}

export function Loading({ what }: { what: string }) {
  return <p class="muted" role="status">Loading {what}…</p>;
}

export function Badge({ ok, yes, no }: { ok: boolean; yes: string; no: string }) {
  return <span class={`badge ${ok ? 'badge-ok' : 'badge-bad'}`}>{ok ? yes : no}</span>;
}

type FieldProps = Parameters<typeof Field>[0];
/** Built apart: Preact 11 types an <input> by its literal `type`, which a prop cannot be. */
function inputAttributes(id: string, props: FieldProps): InputHTMLAttributes<HTMLInputElement> {
  return {
    id, name: props.name ?? id, type: props.type ?? 'text', value: props.value, required: props.required,
    autocomplete: props.autocomplete ?? 'off', inputMode: props.inputMode, pattern: props.pattern, autoFocus: props.autoFocus,
    'aria-describedby': props.hint ? `${id}-hint` : undefined,
    onInput: (e: Event) => props.onInput((e.currentTarget as HTMLInputElement).value),
  } as InputHTMLAttributes<HTMLInputElement>;
}

let fieldIds = 0;
/** A labelled input: every control has a visible label bound to it. */
export function Field(props: {
  label: string; value: string; onInput: (v: string) => void; type?: 'text' | 'password'; name?: string; autocomplete?: string;
  required?: boolean; inputMode?: 'numeric' | 'text'; pattern?: string; hint?: string; autoFocus?: boolean;
}) {
  const [id] = useState(() => `f${++fieldIds}`);
  return (
    <div class="field">
      <label for={id}>{props.label}</label>
      <input {...inputAttributes(id, props)} />
      {props.hint && <small id={`${id}-hint`} class="muted">{props.hint}</small>}
    </div>
  );
}

/** A labelled textarea (lists one per line, JSON documents); `error` names the message that says what is wrong with it. */
export function TextArea(props: { label: string; value: string; onInput: (v: string) => void; rows?: number; hint?: string; error?: string; code?: boolean }) {
  const [id] = useState(() => `f${++fieldIds}`);
  const described = [props.hint ? `${id}-hint` : '', props.error ?? ''].join(' ').trim();
  return (
    <div class="field wide">
      <label for={id}>{props.label}</label>
      <textarea id={id} name={id} rows={props.rows ?? 3} value={props.value} spellcheck={false} class={props.code ? 'code' : undefined}
        aria-invalid={props.error ? 'true' : undefined} aria-describedby={described || undefined}
        onInput={(e) => props.onInput((e.currentTarget as HTMLTextAreaElement).value)} />
      {props.hint && <small id={`${id}-hint`} class="muted">{props.hint}</small>}
    </div>
  );
}

export function Select(props: { label: string; value: string; options: readonly string[]; onChange: (v: string) => void }) {
  const [id] = useState(() => `f${++fieldIds}`);
  return (
    <div class="field">
      <label for={id}>{props.label}</label>
      <select id={id} value={props.value} onChange={(e) => props.onChange((e.currentTarget as HTMLSelectElement).value)}>
        {props.options.map((o) => <option key={o} value={o}>{o}</option>)}
      </select>
    </div>
  );
}

/** A definition list of facts. */
export function Facts({ items }: { items: Array<[string, ComponentChildren]> }) {
  return (
    <dl class="facts">
      {items.map(([k, v]) => [<dt key={`${k}-t`}>{k}</dt>, <dd key={`${k}-d`}>{v}</dd>])}
    </dl>
  );
}

export const when = (iso: string | undefined) => (iso ? new Date(iso).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC') : '—');
