/** Entry timestamps. Date#toISOString costs about half a microsecond; entries within one millisecond share the text. */
let lastMillis = -1;
let lastIso = '';

export function isoNow(): string {
  const now = Date.now();
  if (now !== lastMillis) {
    lastMillis = now;
    lastIso = new Date(now).toISOString();
  }
  return lastIso;
}
