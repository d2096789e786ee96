// The request-smuggling corpus: crafted requests for a reverse proxy in front of the recording
// upstream (recorder_upstream.js), run and judged by smuggle.js. Node.js >= 20, no modules.
//
// Every case is one client connection. Its bytes are built from the case's own target
// T = /c/<id> (so that what reaches the upstream can be told apart by case), and many carry
// a second, "smuggled" request S = GET T/smuggled after the part that can be read two ways:
// a front that reads the ambiguous part one way forwards S as a request of its own.
//
//   expect 'refuse'  RFC 9112 says no (or the reading is ambiguous): the front answers 4xx/5xx
//                    or closes, and nothing of the case reaches the upstream;
//          'pass'    valid: exactly `requests` reach the upstream, intact (method, target,
//                    body bytes), and the client gets one answer per request;
//          'either'  the RFC lets a recipient accept or refuse it (bare LF line ends, a
//                    leading empty line, …): refused, or passed intact as `requests`.
//   noFields         field names that must not reach the upstream (headers or trailers):
//                    a trailer that would add an Authorization the head never had, an
//                    h2c Upgrade that would take the connection past the gate.
//   noTrailers       no trailer field may reach the upstream (framing fields in a trailer).
//   segments + interim   the bytes are sent in two writes, with a wait for an interim (1xx)
//                    answer between them (Expect: 100-continue).
//
// Response cases (expect from recorder_upstream.js' RESPONSES) are appended by smuggle.js.
'use strict';

const HOST = 'corpus.test';
const H = `Host: ${HOST}\r\n`;
const TE = 'Transfer-Encoding: chunked\r\n';

const get = (T, fields = '') => `GET ${T} HTTP/1.1\r\n${H}${fields}\r\n`;
const post = (T, fields, body) => `POST ${T} HTTP/1.1\r\n${H}${fields}\r\n${body}`;
const smuggled = (T) => `GET ${T}/smuggled HTTP/1.1\r\n${H}\r\n`;
const len = (s) => Buffer.byteLength(s, 'latin1');
const hex = (n) => n.toString(16);

// A Transfer-Encoding variant `teField` beside a Content-Length covering `0\r\n\r\n` + S:
// a chunked reader ends the body at once and reads S as the next request; a reader that
// does not take the field for chunked reads S as body.
function teObfuscated(T, teField) {
  const body = '0\r\n\r\n' + smuggled(T);
  return post(T, `${teField}\r\nContent-Length: ${len(body)}\r\n`, body);
}
// A hidden field (behind a bare CR or LF, or folded) that is a Transfer-Encoding to some
// readers; the Content-Length covers S for the others.
function hiddenTe(T, fieldLines) {
  const body = '0\r\n\r\n' + smuggled(T);
  return `POST ${T} HTTP/1.1\r\n${H}${fieldLines}Content-Length: ${len(body)}\r\n\r\n${body}`;
}
const chunked = (T, chunks) => post(T, TE, chunks);

const CASES = [];
function add(category, id, expect, what, raw, opts = {}) {
  CASES.push(Object.assign({ category, id, expect, what, raw }, opts));
}
// The one request a 'pass' or 'either' case must deliver.
const one = (method, body = '', suffix = '') => (T) => [{ method, target: T + suffix, body }];

// ---- valid controls: passed intact ----------------------------------------------------------
const C = 'control';
add(C, 'get', 'pass', 'plain GET', (T) => get(T), { requests: one('GET') });
add(C, 'post-length', 'pass', 'POST with Content-Length',
  (T) => post(T, 'Content-Length: 5\r\n', 'hello'), { requests: one('POST', 'hello') });
add(C, 'post-chunked', 'pass', 'chunked POST, two chunks',
  (T) => chunked(T, '5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n'), { requests: one('POST', 'hello world') });
add(C, 'chunk-ext', 'pass', 'chunk extension 5;ext=1',
  (T) => chunked(T, '5;ext=1\r\nhello\r\n0\r\n\r\n'), { requests: one('POST', 'hello') });
add(C, 'chunk-ext-quoted', 'pass', 'chunk extension with a quoted value',
  (T) => chunked(T, '5;name="a b"\r\nhello\r\n0\r\n\r\n'), { requests: one('POST', 'hello') });
add(C, 'chunk-trailer', 'pass', 'chunked with a harmless trailer field',
  (T) => chunked(T, '5\r\nhello\r\n0\r\nX-Checksum: 1\r\n\r\n'), { requests: one('POST', 'hello') });
add(C, 'pipelined-gets', 'pass', 'two GETs in one write',
  (T) => get(`${T}/1`) + get(`${T}/2`),
  { requests: (T) => [{ method: 'GET', target: `${T}/1`, body: '' }, { method: 'GET', target: `${T}/2`, body: '' }] });
add(C, 'pipelined-post-get', 'pass', 'a POST and a GET in one write',
  (T) => post(`${T}/1`, 'Content-Length: 5\r\n', 'hello') + get(`${T}/2`),
  { requests: (T) => [{ method: 'POST', target: `${T}/1`, body: 'hello' }, { method: 'GET', target: `${T}/2`, body: '' }] });
add(C, 'expect-100', 'pass', 'Expect: 100-continue, the body sent after the 100',
  (T) => [`POST ${T} HTTP/1.1\r\n${H}Expect: 100-continue\r\nContent-Length: 5\r\n\r\n`, 'hello'],
  { requests: one('POST', 'hello'), interim: true });
add(C, 'head', 'pass', 'HEAD', (T) => `HEAD ${T} HTTP/1.1\r\n${H}\r\n`, { requests: one('HEAD') });
add(C, 'options-star', 'either', 'OPTIONS * (asterisk-form; portcullis refuses it: routes match paths)', () => `OPTIONS * HTTP/1.1\r\n${H}\r\n`,
  { requests: () => [{ method: 'OPTIONS', target: '*', body: '' }] });
add(C, 'long-header', 'pass', 'a 6000-byte header value',
  (T) => get(T, `X-Long: ${'a'.repeat(6000)}\r\n`), { requests: one('GET') });
add(C, 'many-headers', 'pass', '50 headers',
  (T) => get(T, Array.from({ length: 50 }, (_, i) => `X-H${i}: ${i}\r\n`).join('')), { requests: one('GET') });
add(C, 'query', 'pass', 'a query string', (T) => get(`${T}?a=1&b=%20x`), { requests: one('GET', '', '?a=1&b=%20x') });
add(C, 'empty-body', 'pass', 'POST with Content-Length: 0',
  (T) => post(T, 'Content-Length: 0\r\n', ''), { requests: one('POST') });
add(C, 'binary-body', 'pass', 'a body with NUL, CR, LF bytes',
  (T) => post(T, 'Content-Length: 7\r\n', 'a\0b\r\nc\n'), { requests: one('POST', 'a\0b\r\nc\n') });
add(C, 'tab-ows', 'pass', 'a tab around a field value', (T) => get(T, 'X-A:\tv\t\r\n'), { requests: one('GET') });
add(C, 'te-upper', 'pass', 'Transfer-Encoding: CHUNKED',
  (T) => post(T, 'Transfer-Encoding: CHUNKED\r\n', '5\r\nhello\r\n0\r\n\r\n'), { requests: one('POST', 'hello') });
add(C, 'te-lower-name', 'pass', 'transfer-encoding: chunked (lower-case name)',
  (T) => post(T, 'transfer-encoding: chunked\r\n', '5\r\nhello\r\n0\r\n\r\n'), { requests: one('POST', 'hello') });
add(C, 'cl-leading-zeros', 'pass', 'Content-Length: 005',
  (T) => post(T, 'Content-Length: 005\r\n', 'hello'), { requests: one('POST', 'hello') });
add(C, 'http10-post', 'pass', 'HTTP/1.0 POST with Content-Length',
  (T) => `POST ${T} HTTP/1.0\r\n${H}Content-Length: 5\r\n\r\nhello`, { requests: one('POST', 'hello') });
add(C, 'http10-no-host', 'either', 'HTTP/1.0 GET without Host (portcullis refuses it: routes match hosts)', (T) => `GET ${T} HTTP/1.0\r\n\r\n`,
  { requests: one('GET') });
add('CL.0', 'get-with-body', 'pass', 'GET with a Content-Length body that looks like a request',
  (T) => get(T, `Content-Length: ${len(smuggled(T))}\r\n`) + smuggled(T),
  { requests: (T) => [{ method: 'GET', target: T, body: smuggled(T) }] });

// ---- CL.TE and TE.CL ------------------------------------------------------------------------
add('CL.TE', 'cl-te', 'refuse', 'Content-Length covering 0-chunk + S, then Transfer-Encoding: chunked',
  (T) => { const b = '0\r\n\r\n' + smuggled(T); return post(T, `Content-Length: ${len(b)}\r\n${TE}`, b); });
add('CL.TE', 'cl-zero-te', 'refuse', 'Content-Length: 0 with a chunked body',
  (T) => post(T, `Content-Length: 0\r\n${TE}`, '5\r\nhello\r\n0\r\n\r\n'));
add('TE.CL', 'te-cl', 'refuse', 'Transfer-Encoding: chunked, then Content-Length: 4 (the chunk size line)',
  (T) => { const s = smuggled(T); return post(T, `${TE}Content-Length: 4\r\n`, `${hex(len(s))}\r\n${s}\r\n0\r\n\r\n`); });
add('TE.CL', 'te-cl-http10', 'refuse', 'HTTP/1.0 with Transfer-Encoding and Content-Length',
  (T) => `POST ${T} HTTP/1.0\r\n${H}${TE}Content-Length: 5\r\n\r\n0\r\n\r\n`);
add('HTTP/1.0+TE', 'te-http10', 'refuse', 'HTTP/1.0 with Transfer-Encoding: chunked, then S',
  (T) => `POST ${T} HTTP/1.0\r\n${H}${TE}\r\n5\r\nhello\r\n0\r\n\r\n` + smuggled(T));
add('HTTP/1.0+TE', 'te-http10-keepalive', 'refuse', 'HTTP/1.0 keep-alive with Transfer-Encoding: chunked, then S',
  (T) => `POST ${T} HTTP/1.0\r\n${H}Connection: keep-alive\r\n${TE}\r\n0\r\n\r\n` + smuggled(T));

// ---- TE.TE: Transfer-Encoding obfuscations (each beside a Content-Length covering S) -----------
const TT = 'TE.TE';
add(TT, 'te-space-before-colon', 'refuse', '"Transfer-Encoding : chunked"', (T) => teObfuscated(T, 'Transfer-Encoding : chunked'));
add(TT, 'te-tab-before-colon', 'refuse', '"Transfer-Encoding\\t: chunked"', (T) => teObfuscated(T, 'Transfer-Encoding\t: chunked'));
add(TT, 'te-xchunked', 'refuse', 'Transfer-Encoding: xchunked', (T) => teObfuscated(T, 'Transfer-Encoding: xchunked'));
add(TT, 'te-chunked-identity', 'refuse', 'Transfer-Encoding: chunked, identity', (T) => teObfuscated(T, 'Transfer-Encoding: chunked, identity'));
add(TT, 'te-identity-chunked', 'refuse', 'Transfer-Encoding: identity, chunked', (T) => teObfuscated(T, 'Transfer-Encoding: identity, chunked'));
add(TT, 'te-chunked-chunked', 'refuse', 'Transfer-Encoding: chunked, chunked', (T) => teObfuscated(T, 'Transfer-Encoding: chunked, chunked'));
add(TT, 'te-two-fields', 'refuse', 'Transfer-Encoding: chunked, twice', (T) => teObfuscated(T, 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked'));
add(TT, 'te-identity-field', 'refuse', 'Transfer-Encoding: identity, then Transfer-Encoding: chunked',
  (T) => teObfuscated(T, 'Transfer-Encoding: identity\r\nTransfer-Encoding: chunked'));
add(TT, 'te-vtab', 'refuse', 'Transfer-Encoding:\\vchunked', (T) => teObfuscated(T, 'Transfer-Encoding:\x0bchunked'));
add(TT, 'te-quoted', 'refuse', 'Transfer-Encoding: "chunked"', (T) => teObfuscated(T, 'Transfer-Encoding: "chunked"'));
add(TT, 'te-nul', 'refuse', 'Transfer-Encoding: chunked\\0', (T) => teObfuscated(T, 'Transfer-Encoding: chunked\0'));
add(TT, 'te-empty-element', 'refuse', 'Transfer-Encoding: , chunked', (T) => teObfuscated(T, 'Transfer-Encoding: , chunked'));
add(TT, 'te-gzip', 'refuse', 'Transfer-Encoding: gzip (no chunked) with a Content-Length', (T) => teObfuscated(T, 'Transfer-Encoding: gzip'));
add(TT, 'te-name-nbsp', 'refuse', '"Transfer-Encoding\\xa0: chunked" (non-ASCII in the name)', (T) => teObfuscated(T, 'Transfer-Encoding\xa0: chunked'));
add(TT, 'te-gzip-chunked', 'refuse', 'Transfer-Encoding: gzip, chunked (a coding portcullis does not decode), then S',
  (T) => post(T, 'Transfer-Encoding: gzip, chunked\r\n', '0\r\n\r\n') + smuggled(T));
add(TT, 'te-underscore', 'either', 'Transfer_Encoding: chunked (another field; CGI-style readers fold _ into -)',
  (T) => teObfuscated(T, 'Transfer_Encoding: chunked'),
  { requests: (T) => [{ method: 'POST', target: T, body: '0\r\n\r\n' + smuggled(T) }] });

// ---- two Content-Lengths and bad ones --------------------------------------------------------
const CC = 'CL.CL';
add(CC, 'cl-two-different', 'refuse', 'Content-Length: 5 and Content-Length: 5+|S|',
  (T) => post(T, `Content-Length: 5\r\nContent-Length: ${5 + len(smuggled(T))}\r\n`, 'hello' + smuggled(T)));
add(CC, 'cl-two-equal', 'refuse', 'Content-Length: 5, twice (RFC 9110 §8.6 lets a recipient merge them)',
  (T) => post(T, 'Content-Length: 5\r\nContent-Length: 5\r\n', 'hello'));
add(CC, 'cl-list-equal', 'refuse', 'Content-Length: 5, 5', (T) => post(T, 'Content-Length: 5, 5\r\n', 'hello'));
add(CC, 'cl-list-different', 'refuse', 'Content-Length: 5, 6', (T) => post(T, 'Content-Length: 5, 6\r\n', 'hello!'));
add(CC, 'cl-zero-then-n', 'refuse', 'Content-Length: 0 then Content-Length: |S|',
  (T) => post(T, `Content-Length: 0\r\nContent-Length: ${len(smuggled(T))}\r\n`, smuggled(T)));
add(CC, 'cl-plus', 'refuse', 'Content-Length: +5', (T) => post(T, 'Content-Length: +5\r\n', 'hello'));
add(CC, 'cl-hex', 'refuse', 'Content-Length: 0x5', (T) => post(T, 'Content-Length: 0x5\r\n', 'hello'));
add(CC, 'cl-negative', 'refuse', 'Content-Length: -1, then S', (T) => post(T, 'Content-Length: -1\r\n', smuggled(T)));
add(CC, 'cl-overflow', 'refuse', 'Content-Length: 2^64+5 (wraps to 5)',
  (T) => post(T, 'Content-Length: 18446744073709551621\r\n', 'hello' + smuggled(T)));
add(CC, 'cl-empty', 'refuse', 'Content-Length: (empty), then S', (T) => post(T, 'Content-Length: \r\n', smuggled(T)));
add(CC, 'cl-inner-space', 'refuse', 'Content-Length: 1 0', (T) => post(T, 'Content-Length: 1 0\r\n', 'hello12345'));
add(CC, 'cl-trailing-garbage', 'refuse', 'Content-Length: 5abc', (T) => post(T, 'Content-Length: 5abc\r\n', 'hello'));
add(CC, 'cl-space-before-colon', 'refuse', '"Content-Length : |S|" (a reader that drops it reads S as a request)',
  (T) => post(T, `Content-Length : ${len(smuggled(T))}\r\n`, smuggled(T)));

// ---- chunk sizes, extensions, trailers ------------------------------------------------------
const K = 'chunk';
add(K, 'chunk-ext-empty', 'refuse', 'chunk extension without a name: 5;', (T) => chunked(T, '5;\r\nhello\r\n0\r\n\r\n'));
add(K, 'chunk-ext-bare-cr', 'refuse', 'bare CR in a chunk extension', (T) => chunked(T, '5;a\rb\r\nhello\r\n0\r\n\r\n'));
add(K, 'chunk-ext-bare-lf', 'refuse', 'bare LF in a chunk extension', (T) => chunked(T, '5;a\nb\r\nhello\r\n0\r\n\r\n'));
add(K, 'chunk-ext-no-value', 'refuse', 'chunk extension 5;a= (no value)', (T) => chunked(T, '5;a=\r\nhello\r\n0\r\n\r\n'));
add(K, 'chunk-ext-quoted-crlf', 'refuse', 'CRLF inside a quoted chunk extension value, then S',
  (T) => chunked(T, '5;a="b\r\n0\r\n\r\n' + smuggled(T) + '"\r\nhello\r\n0\r\n\r\n'));
add(K, 'chunk-ext-nul', 'refuse', 'NUL in a chunk extension', (T) => chunked(T, '5;a\0b\r\nhello\r\n0\r\n\r\n'));
add(K, 'chunk-ext-bws', 'either', 'chunk extension after whitespace: 5 ;a=b (BWS, in the grammar)',
  (T) => chunked(T, '5 ;a=b\r\nhello\r\n0\r\n\r\n'), { requests: one('POST', 'hello') });
add(K, 'chunk-ext-long', 'either', 'an 8000-byte chunk extension',
  (T) => chunked(T, `5;x=${'a'.repeat(8000)}\r\nhello\r\n0\r\n\r\n`), { requests: one('POST', 'hello') });
add(K, 'chunk-size-0x', 'refuse', 'chunk size 0x5', (T) => chunked(T, '0x5\r\nhello\r\n0\r\n\r\n'));
add(K, 'chunk-size-negative', 'refuse', 'chunk size -5', (T) => chunked(T, '-5\r\nhello\r\n0\r\n\r\n'));
add(K, 'chunk-size-plus', 'refuse', 'chunk size +5', (T) => chunked(T, '+5\r\nhello\r\n0\r\n\r\n'));
add(K, 'chunk-size-overflow', 'refuse', 'chunk size of 17 hex digits (wraps to 5 in 64 bits)',
  (T) => chunked(T, 'ffffffffffffffff5\r\nhello\r\n0\r\n\r\n' + smuggled(T)));
add(K, 'chunk-size-trailing-space', 'refuse', 'chunk size "5 "', (T) => chunked(T, '5 \r\nhello\r\n0\r\n\r\n'));
add(K, 'chunk-size-leading-space', 'refuse', 'chunk size " 5"', (T) => chunked(T, ' 5\r\nhello\r\n0\r\n\r\n'));
add(K, 'chunk-size-empty', 'refuse', 'an empty chunk size line', (T) => chunked(T, '\r\nhello\r\n0\r\n\r\n'));
add(K, 'chunk-data-long', 'refuse', 'chunk data longer than its size', (T) => chunked(T, '3\r\nhello\r\n0\r\n\r\n'));
add(K, 'chunk-data-short', 'refuse', 'chunk size covering the last chunk, then S',
  (T) => chunked(T, 'a\r\nhello\r\n0\r\n\r\n' + smuggled(T)));
add(K, 'chunk-no-crlf', 'refuse', 'chunk data not followed by CRLF', (T) => chunked(T, '5\r\nhelloX0\r\n\r\n'));
add(K, 'chunk-last-then-request', 'refuse', 'last chunk without the final CRLF, S where a trailer would be',
  (T) => chunked(T, '5\r\nhello\r\n0\r\n' + smuggled(T)));
add(K, 'trailer-authorization', 'pass', 'a trailer Authorization: the head had none; it must not reach the upstream',
  (T) => chunked(T, '5\r\nhello\r\n0\r\nAuthorization: Bearer x\r\n\r\n'),
  { requests: one('POST', 'hello'), noFields: ['authorization'] });
add(K, 'trailer-framing', 'either', 'trailer fields Content-Length and Transfer-Encoding',
  (T) => chunked(T, '5\r\nhello\r\n0\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\n\r\n'),
  { requests: one('POST', 'hello'), noTrailers: true });
add(K, 'trailer-obs-fold', 'either', 'an obs-folded trailer field (RFC 9112 §5.2: refuse or unfold)',
  (T) => chunked(T, '5\r\nhello\r\n0\r\nX-A: a\r\n b\r\n\r\n'), { requests: one('POST', 'hello') });

// ---- bare LF and bare CR --------------------------------------------------------------------
const L = 'bare LF/CR';
add(L, 'lf-chunk-size', 'refuse', 'chunk size line ended by a bare LF', (T) => chunked(T, '5\nhello\r\n0\r\n\r\n'));
add(L, 'lf-chunk-data', 'refuse', 'chunk data ended by a bare LF', (T) => chunked(T, '5\r\nhello\n0\r\n\r\n'));
add(L, 'lf-last-chunk', 'refuse', 'last chunk and end ended by bare LFs', (T) => chunked(T, '5\r\nhello\r\n0\n\n'));
add(L, 'lf-chunk-all', 'refuse', 'every chunk line ended by a bare LF, then S',
  (T) => chunked(T, '5\nhello\n0\n\n') + smuggled(T));
add(L, 'lf-line-ends', 'either', 'request and field lines ended by bare LF (RFC 9112 §2.2: MAY accept)',
  (T) => `GET ${T} HTTP/1.1\nHost: ${HOST}\n\n`, { requests: one('GET') });
add(L, 'lf-request-line', 'either', 'only the request line ended by a bare LF',
  (T) => `GET ${T} HTTP/1.1\n${H}\r\n`, { requests: one('GET') });
add(L, 'lf-hides-te', 'refuse', 'a bare LF inside a field hiding Transfer-Encoding: chunked',
  (T) => hiddenTe(T, `X-A: 1\nTransfer-Encoding: chunked\r\n`));
add(L, 'cr-in-value', 'refuse', 'a bare CR in a field value', (T) => get(T, 'X-A: a\rb\r\n'));
add(L, 'cr-hides-te', 'refuse', 'a bare CR inside a field hiding Transfer-Encoding: chunked',
  (T) => hiddenTe(T, `X-A: 1\rTransfer-Encoding: chunked\r\n`));
add(L, 'cr-request-line', 'refuse', 'the request line ended by a bare CR', (T) => `GET ${T} HTTP/1.1\r${H}\r\n`);
add(L, 'leading-crlf', 'either', 'an empty line before the request line (RFC 9112 §2.2: SHOULD ignore)',
  (T) => '\r\n' + get(T), { requests: one('GET') });
add(L, 'leading-lf', 'either', 'a bare LF before the request line', (T) => '\n' + get(T), { requests: one('GET') });

// ---- NUL ------------------------------------------------------------------------------------
add('NUL', 'nul-value', 'refuse', 'NUL in a field value', (T) => get(T, 'X-A: a\0b\r\n'));
add('NUL', 'nul-target', 'refuse', 'NUL in the target', (T) => get(`${T}\0x`));
add('NUL', 'nul-name', 'refuse', 'NUL in a field name', (T) => get(T, 'X\0A: 1\r\n'));
add('NUL', 'nul-method', 'refuse', 'NUL in the method', (T) => `GE\0T ${T} HTTP/1.1\r\n${H}\r\n`);
add('NUL', 'nul-before-colon', 'refuse', 'Content-Length\\0: |S|', (T) => post(T, `Content-Length\0: ${len(smuggled(T))}\r\n`, smuggled(T)));

// ---- field values ---------------------------------------------------------------------------
const V = 'header value';
add(V, 'value-ctl', 'refuse', 'a control byte (0x01) in a field value', (T) => get(T, 'X-A: a\x01b\r\n'));
add(V, 'value-esc', 'refuse', 'an ESC (0x1b) in a field value', (T) => get(T, 'X-A: a\x1b[0mb\r\n'));
add(V, 'value-del', 'refuse', 'DEL (0x7f) in a field value', (T) => get(T, 'X-A: a\x7fb\r\n'));
add(V, 'value-obs-text', 'pass', 'obs-text (0x80-0xff) in a field value (allowed by the grammar)',
  (T) => get(T, 'X-A: caf\xc3\xa9\r\n'), { requests: one('GET') });

// ---- obs-fold -------------------------------------------------------------------------------
add('obs-fold', 'fold-space', 'refuse', 'a field continued on a line starting with a space', (T) => get(T, 'X-A: a\r\n b\r\n'));
add('obs-fold', 'fold-tab', 'refuse', 'a field continued on a line starting with a tab', (T) => get(T, 'X-A: a\r\n\tb\r\n'));
add('obs-fold', 'fold-content-length', 'refuse', 'Content-Length folded onto the next line',
  (T) => post(T, 'Content-Length:\r\n 5\r\n', 'hello'));
add('obs-fold', 'fold-first-field', 'refuse', 'the first field line starts with a space',
  (T) => `GET ${T} HTTP/1.1\r\n ${H}\r\n`);
add('obs-fold', 'fold-hides-te', 'refuse', 'a folded line " Transfer-Encoding: chunked"',
  (T) => hiddenTe(T, 'X-A: 1\r\n Transfer-Encoding: chunked\r\n'));

// ---- field names ----------------------------------------------------------------------------
const N = 'header name';
add(N, 'name-space', 'refuse', 'a space inside a field name', (T) => get(T, 'X A: 1\r\n'));
add(N, 'name-empty', 'refuse', 'an empty field name', (T) => get(T, ': 1\r\n'));
add(N, 'name-no-colon', 'refuse', 'a field line without a colon', (T) => get(T, 'X-A 1\r\n'));
add(N, 'name-del', 'refuse', 'DEL in a field name', (T) => get(T, 'X\x7fA: 1\r\n'));
add(N, 'name-non-ascii', 'refuse', 'non-ASCII in a field name', (T) => get(T, 'X\xc3\xa9: 1\r\n'));
add(N, 'name-host-space', 'refuse', '"Host : other.test" beside the Host', (T) => get(T, 'Host : other.test\r\n'));
add(N, 'name-cl-tab', 'refuse', '"Content-Length\\t: |S|"', (T) => post(T, `Content-Length\t: ${len(smuggled(T))}\r\n`, smuggled(T)));

// ---- Host -----------------------------------------------------------------------------------
add('Host', 'host-missing', 'refuse', 'HTTP/1.1 without Host', (T) => `GET ${T} HTTP/1.1\r\n\r\n`);
add('Host', 'host-two-different', 'refuse', 'two different Hosts', (T) => get(T, 'Host: other.test\r\n'));
add('Host', 'host-two-same', 'refuse', 'two equal Hosts', (T) => get(T, H));
add('Host', 'host-list', 'refuse', 'Host: corpus.test, other.test', (T) => `GET ${T} HTTP/1.1\r\nHost: ${HOST}, other.test\r\n\r\n`);
add('Host', 'host-userinfo', 'refuse', 'Host: user@corpus.test', (T) => `GET ${T} HTTP/1.1\r\nHost: user@${HOST}\r\n\r\n`);
add('Host', 'host-slash', 'refuse', 'Host: corpus.test/evil', (T) => `GET ${T} HTTP/1.1\r\nHost: ${HOST}/evil\r\n\r\n`);
add('Host', 'host-empty', 'either', 'Host: (empty; RFC 9112 §3.2 allows it when there is no authority)',
  (T) => `GET ${T} HTTP/1.1\r\nHost:\r\n\r\n`, { requests: one('GET') });

// ---- absolute-form and other target forms -----------------------------------------------------
const A = 'absolute-form';
add(A, 'abs-same-host', 'either', 'absolute-form naming the Host',
  (T) => `GET http://${HOST}${T} HTTP/1.1\r\n${H}\r\n`, { requests: one('GET') });
add(A, 'abs-other-host', 'refuse', 'absolute-form naming another host than Host',
  (T) => `GET http://other.test${T} HTTP/1.1\r\n${H}\r\n`);
add(A, 'abs-port-mismatch', 'refuse', 'absolute-form with a port the Host does not have',
  (T) => `GET http://${HOST}:8080${T} HTTP/1.1\r\n${H}\r\n`);
add(A, 'abs-userinfo', 'refuse', 'absolute-form with userinfo', (T) => `GET http://user@${HOST}${T} HTTP/1.1\r\n${H}\r\n`);
add(A, 'abs-no-host', 'refuse', 'absolute-form on HTTP/1.1 without Host', (T) => `GET http://${HOST}${T} HTTP/1.1\r\n\r\n`);
add(A, 'abs-https', 'either', 'absolute-form https:// on a plain listener',
  (T) => `GET https://${HOST}${T} HTTP/1.1\r\n${H}\r\n`, { requests: one('GET') });
add(A, 'abs-scheme-upper', 'either', 'absolute-form HTTP://',
  (T) => `GET HTTP://${HOST}${T} HTTP/1.1\r\n${H}\r\n`, { requests: one('GET') });
add(A, 'authority-form-get', 'refuse', 'authority-form target on GET', () => `GET ${HOST}:80 HTTP/1.1\r\n${H}\r\n`);
add(A, 'connect', 'refuse', 'CONNECT (a reverse proxy tunnels nothing)', () => `CONNECT ${HOST}:443 HTTP/1.1\r\nHost: ${HOST}:443\r\n\r\n`);

// ---- request line and sizes -----------------------------------------------------------------
const Q = 'request line';
add(Q, 'version-1-10', 'refuse', 'HTTP/1.10', (T) => `GET ${T} HTTP/1.10\r\n${H}\r\n`);
add(Q, 'version-lower', 'refuse', 'http/1.1', (T) => `GET ${T} http/1.1\r\n${H}\r\n`);
add(Q, 'version-2', 'refuse', 'HTTP/2.0 in an HTTP/1 request line', (T) => `GET ${T} HTTP/2.0\r\n${H}\r\n`);
add(Q, 'version-09', 'refuse', 'no version (an HTTP/0.9 request)', (T) => `GET ${T}\r\n\r\n`);
add(Q, 'version-1-2', 'either', 'HTTP/1.2 (RFC 9112 §2.3: SHOULD be read as 1.1)',
  (T) => `GET ${T} HTTP/1.2\r\n${H}\r\n`, { requests: one('GET') });
add(Q, 'double-space', 'refuse', 'two spaces after the method', (T) => `GET  ${T} HTTP/1.1\r\n${H}\r\n`);
add(Q, 'tab-separator', 'refuse', 'tabs between method, target and version', (T) => `GET\t${T}\tHTTP/1.1\r\n${H}\r\n`);
add(Q, 'space-after-version', 'refuse', 'a space after the version', (T) => `GET ${T} HTTP/1.1 \r\n${H}\r\n`);
add(Q, 'space-in-target', 'refuse', 'a space inside the target', (T) => `GET ${T} x HTTP/1.1\r\n${H}\r\n`);
add(Q, 'fragment-in-target', 'refuse', 'a # in the target', (T) => get(`${T}#frag`));
add(Q, 'method-bad-char', 'refuse', 'a method with a non-token character: G(T', (T) => `G(T ${T} HTTP/1.1\r\n${H}\r\n`);
add(Q, 'method-lower', 'either', 'method "get" (a token; methods are case-sensitive)',
  (T) => `get ${T} HTTP/1.1\r\n${H}\r\n`, { requests: one('get') });
add(Q, 'line-too-long', 'refuse', 'a 20 KiB target', (T) => get(`${T}/${'a'.repeat(20 * 1024)}`));
add(Q, 'headers-too-large', 'refuse', '70 KiB of header fields',
  (T) => get(T, Array.from({ length: 10 }, (_, i) => `X-Big${i}: ${'b'.repeat(7000)}\r\n`).join('')));
add(Q, 'header-count', 'refuse', '1500 header fields (12 KB in all)',
  (T) => get(T, Array.from({ length: 1500 }, () => 'X-N: 1\r\n').join('')));

// ---- hop-by-hop -----------------------------------------------------------------------------
const P = 'hop-by-hop';
add(P, 'connection-content-length', 'either', 'Connection: Content-Length (a framing field named hop-by-hop)',
  (T) => post(T, 'Connection: Content-Length\r\nContent-Length: 5\r\n', 'hello'), { requests: one('POST', 'hello') });
add(P, 'connection-te', 'either', 'Connection: Transfer-Encoding on a chunked request',
  (T) => post(T, `Connection: Transfer-Encoding\r\n${TE}`, '5\r\nhello\r\n0\r\n\r\n'), { requests: one('POST', 'hello') });
add(P, 'upgrade-h2c', 'either', 'Upgrade: h2c (h2c smuggling: the upstream would speak HTTP/2 past the gate)',
  (T) => get(T, 'Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: Upgrade, HTTP2-Settings\r\n'),
  { requests: one('GET'), noFields: ['upgrade'] });

module.exports = { CASES, HOST, smuggled };
