import type { FastifyBodyParser, FastifyRequest } from 'fastify';
import { KeyholdError } from '../errors.js';
import { exceedsJsonDepth, MAX_JSON_DEPTH } from './json-depth.js';

/** `charset` parameters of a media type (RFC 9110 §8.3.1: names case-insensitive, values a token or a quoted string). */
const CHARSET_PARAMETER = /;\s*charset\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))/gi;

/**
 * JSON text is UTF-8 (RFC 8259 §8.1). A body labelled with another charset is refused rather than
 * decoded as UTF-8 regardless, which would store something other than what the client meant.
 */
export function charsetIsUtf8(contentType: string): boolean {
  if (contentType.indexOf(';') === -1) return true;
  for (const match of contentType.matchAll(CHARSET_PARAMETER)) {
    const value = (match[1] !== undefined ? match[1].replace(/\\(.)/g, '$1') : (match[2] as string)).toLowerCase();
    if (value !== 'utf-8' && value !== 'utf8') return false;
  }
  return true;
}

/**
 * The application/json body parser (register with parseAs 'buffer'). Before fastify's own parser
 * (prototype-poisoning checks included) sees the text, it refuses, each with a code: a content
 * coding other than identity (415), a charset other than UTF-8 (415), bytes that are not valid UTF-8 (400: decoding them as a string would
 * silently turn them into U+FFFD; a fatal TextDecoder validates while it decodes), and nesting deeper than MAX_JSON_DEPTH (400). The decoded text is
 * kept on the request so the audit record can carry its HMAC without serialising the body again.
 */
/** `Transfer-Encoding: chunked` in any spelling (`Chunked`, `identity, chunked`): nothing to undo but the chunking. */
function onlyChunked(header: string): boolean {
  return header.split(',').every((coding) => {
    const c = coding.trim().toLowerCase();
    return c === 'chunked' || c === 'identity';
  });
}

/**
 * Decodes and validates in one pass. A BOM is kept in the text: fastify's parser (secure-json-parse)
 * then ignores a leading one, as RFC 8259 §8.1 allows, and JSON.parse refuses one anywhere else.
 */
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function jsonBodyParser(parseJson: FastifyBodyParser<string>): FastifyBodyParser<Buffer> {
  return (request: FastifyRequest, body: Buffer, done) => {
    // keyhold decodes no content coding: a gzip-labelled body would be read as plain JSON anyway
    // (what the client meant is not what is stored), so any coding but identity is refused, as
    // RFC 9110 §15.5.16 says. One property read on the common path (no header).
    const coding = request.headers['content-encoding'];
    if (coding !== undefined && coding.trim().toLowerCase() !== 'identity') {
      done(new KeyholdError('ERR_UNSUPPORTED_MEDIA_TYPE', 'request bodies must not have a content coding (Content-Encoding); send plain JSON'), undefined);
      return;
    }
    // The same for transfer codings: Node undoes only `chunked`, and passed the body of
    // `Transfer-Encoding: gzip, chunked` on still gzip-coded. 400, as Node itself answers a
    // transfer coding that does not end in chunked.
    const transfer = request.headers['transfer-encoding'];
    if (transfer !== undefined && transfer !== 'chunked' && !onlyChunked(transfer)) {
      done(new KeyholdError('ERR_BAD_REQUEST', 'request bodies may only be sent with the chunked transfer coding (Transfer-Encoding)'), undefined);
      return;
    }
    const contentType = request.headers['content-type'];
    if (contentType !== 'application/json' && !charsetIsUtf8(contentType ?? '')) {
      done(new KeyholdError('ERR_UNSUPPORTED_MEDIA_TYPE', 'request bodies must be application/json in UTF-8 (no other charset)'), undefined);
      return;
    }
    let text: string;
    try {
      text = utf8.decode(body);
    } catch {
      done(new KeyholdError('ERR_BAD_REQUEST', 'request body is not valid UTF-8'), undefined);
      return;
    }
    // Valid JSON needs two characters per level, so shorter text cannot parse into anything too
    // deep (invalid text is refused by JSON.parse, which does not recurse): most bodies skip the scan.
    if (text.length > 2 * MAX_JSON_DEPTH && exceedsJsonDepth(text, MAX_JSON_DEPTH)) {
      done(new KeyholdError('ERR_JSON_TOO_DEEP', `JSON bodies may nest at most ${MAX_JSON_DEPTH} levels`), undefined);
      return;
    }
    if (request.keyhold && !request.keyhold.route.secretBody) request.keyhold.rawBody = text;
    return parseJson(request, text, done);
  };
}
