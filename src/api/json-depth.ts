/**
 * The deepest nesting any JSON request body may have. JSON.parse copes with far deeper input, but
 * every recursive step after it does not (JSON.stringify in the barrier, response serialisation,
 * structuredClone): 10,000 levels made a RangeError and a 500. Secret data has its own, lower
 * limit (secrets/data-limits.ts); this one bounds every route, before anything parses the text.
 */
export const MAX_JSON_DEPTH = 64;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_ARRAY = 0x5b;
const OPEN_OBJECT = 0x7b;
const CLOSE_ARRAY = 0x5d;
const CLOSE_OBJECT = 0x7d;

/**
 * Whether JSON text nests arrays and objects more than `limit` levels deep (`{}` and `[]` are one
 * level; a scalar is zero). One pass, no allocation: strings are skipped with indexOf, so brackets
 * inside them do not count and a large base64 field costs one native scan. Text that is not valid
 * JSON gets an answer too; JSON.parse refuses it afterwards.
 */
export function exceedsJsonDepth(text: string, limit = MAX_JSON_DEPTH): boolean {
  // Each level needs its own opening bracket, so short text cannot be too deep.
  if (text.length <= limit) return false;
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      i = closingQuote(text, i);
      if (i === -1) return false;
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > limit) return true;
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      depth--;
    }
  }
  return false;
}

/** Index of the quote that closes the string opened at `open`, or -1 when it is never closed. */
function closingQuote(text: string, open: number): number {
  let at = text.indexOf('"', open + 1);
  while (at !== -1) {
    // A quote preceded by an odd run of backslashes is escaped.
    let backslashes = 0;
    for (let j = at - 1; text.charCodeAt(j) === BACKSLASH; j--) backslashes++;
    if (backslashes % 2 === 0) return at;
    at = text.indexOf('"', at + 1);
  }
  return -1;
}
