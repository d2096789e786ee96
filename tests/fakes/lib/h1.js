// Strict HTTP/1.1 message parsing (RFC 9112), shared by the request-smuggling corpus
// (smuggle.js, the judge) and the recording upstream (recorder_upstream.js). Node.js >= 20,
// built-in modules only.
//
// "Strict" is the reading a careful origin server would have: CRLF line ends only (a bare
// CR or LF is an error), no obs-fold, field names of token characters only, field values
// without NUL or other controls, at most one Content-Length holding one decimal number, a
// Transfer-Encoding only as one field saying exactly `chunked` (never with Content-Length,
// never on HTTP/1.0), chunk sizes of hex digits, chunk extensions by the RFC's grammar,
// trailers as fields. A message that passes here has exactly one meaning.
//
//   parseRequest(buf, pos, limits)  -> { state: 'ok', method, target, version, fields,
//                                        body, trailers, framing, end }
//                                    | { state: 'incomplete', head? }  (head: the parsed
//                                        head when only the body is missing)
//                                    | { state: 'error', reason, at }
//   parseResponse(buf, pos, { method, eof }) -> the same shape, with status and reason
//                                        instead of method and target; a response without
//                                        framing is read until `eof`.
'use strict';

const DEFAULT_LIMITS = {
  maxLine: 64 * 1024,     // request or status line, each field line, each chunk line
  maxHeadBytes: 256 * 1024,
  maxFields: 2000,
  maxBody: 16 * 1024 * 1024,
};

const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let b = 0x30; b <= 0x39; b++) TCHAR[b] = 1;
for (let b = 0x41; b <= 0x5a; b++) TCHAR[b] = 1;
for (let b = 0x61; b <= 0x7a; b++) TCHAR[b] = 1;

const TOKEN = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]+";
const QUOTED = '"(?:[\\t \\x21\\x23-\\x5b\\x5d-\\x7e\\x80-\\xff]|\\\\[\\t \\x21-\\x7e\\x80-\\xff])*"';
// chunk = chunk-size [ chunk-ext ] CRLF; chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS val ] )
const CHUNK_LINE = new RegExp(
  `^([0-9A-Fa-f]{1,15})((?:[\\t ]*;[\\t ]*${TOKEN}(?:[\\t ]*=[\\t ]*(?:${TOKEN}|${QUOTED}))?)*)$`);
const REQUEST_LINE = new RegExp(`^(${TOKEN}) ([\\x21-\\x7e]+) (HTTP/1\\.[01])$`);
const STATUS_LINE = /^(HTTP\/1\.[01]) ([1-9][0-9]{2}) ([\t \x21-\x7e\x80-\xff]*)$/;

class Incomplete {}
const INCOMPLETE = new Incomplete();

function fail(reason, at) {
  const e = new Error(reason);
  e.h1 = true;
  e.at = at;
  return e;
}

// One line ending in CRLF from pos: { text (latin1), next }, or INCOMPLETE. A CR not
// followed by LF, or an LF without its CR, is an error.
function readLine(buf, pos, limit, what) {
  const end = Math.min(buf.length, pos + limit + 2);
  for (let i = pos; i < end; i++) {
    const b = buf[i];
    if (b === 0x0a) throw fail(`bare LF in the ${what}`, i);
    if (b === 0x0d) {
      if (i + 1 >= buf.length) throw INCOMPLETE;
      if (buf[i + 1] !== 0x0a) throw fail(`bare CR in the ${what}`, i);
      return { text: buf.latin1Slice(pos, i), next: i + 2 };
    }
  }
  if (buf.length - pos > limit) throw fail(`${what} longer than ${limit} bytes`, pos);
  throw INCOMPLETE;
}

// Field lines up to the empty line: [[name, value], …] (names as sent, values latin1 with
// the surrounding whitespace removed).
function readFields(buf, pos, limits, what) {
  const fields = [];
  const start = pos;
  for (;;) {
    if (pos - start > limits.maxHeadBytes) throw fail(`${what} larger than ${limits.maxHeadBytes} bytes`, pos);
    const { text, next } = readLine(buf, pos, limits.maxLine, `${what} line`);
    if (text === '') return { fields, next };
    if (text[0] === ' ' || text[0] === '\t') throw fail(`obs-fold (a ${what} line starting with whitespace)`, pos);
    const colon = text.indexOf(':');
    if (colon <= 0) throw fail(colon === 0 ? `empty field name in the ${what}` : `${what} line without a colon`, pos);
    for (let i = 0; i < colon; i++) {
      if (!TCHAR[text.charCodeAt(i)]) throw fail(`byte 0x${text.charCodeAt(i).toString(16)} in a field name`, pos + i);
    }
    const value = text.slice(colon + 1).replace(/^[\t ]+|[\t ]+$/g, '');
    for (let i = 0; i < value.length; i++) {
      const c = value.charCodeAt(i);
      if ((c < 0x20 && c !== 0x09) || c === 0x7f) throw fail(`control byte 0x${c.toString(16)} in a field value`, pos);
    }
    fields.push([text.slice(0, colon), value]);
    if (fields.length > limits.maxFields) throw fail(`more than ${limits.maxFields} fields`, pos);
    pos = next;
  }
}

function fieldValues(fields, name) {
  const lower = name.toLowerCase();
  return fields.filter(([n]) => n.toLowerCase() === lower).map(([, v]) => v);
}

// The body's framing from the head: { framing: 'length', length } | { framing: 'chunked' }
// | { framing: 'none' }. Errors for everything that could be read two ways.
function framingOf(fields, version, isRequest, at) {
  const cl = fieldValues(fields, 'content-length');
  const te = fieldValues(fields, 'transfer-encoding');
  if (cl.length > 1) throw fail('repeated Content-Length', at);
  if (te.length > 1) throw fail('repeated Transfer-Encoding', at);
  if (cl.length && te.length) throw fail('both Content-Length and Transfer-Encoding', at);
  if (te.length) {
    if (version === 'HTTP/1.0') throw fail('Transfer-Encoding on HTTP/1.0', at);
    if (te[0].toLowerCase() !== 'chunked') throw fail(`Transfer-Encoding '${te[0]}' (only 'chunked' is unambiguous)`, at);
    return { framing: 'chunked' };
  }
  if (cl.length) {
    if (!/^[0-9]{1,15}$/.test(cl[0])) throw fail(`bad Content-Length '${cl[0]}'`, at);
    return { framing: 'length', length: Number(cl[0]) };
  }
  return { framing: 'none' };
}

// A chunked body from pos: { body, trailers, extensions, next }.
function readChunked(buf, pos, limits) {
  const parts = [];
  const extensions = [];
  let total = 0;
  for (;;) {
    const { text, next } = readLine(buf, pos, limits.maxLine, 'chunk line');
    const m = CHUNK_LINE.exec(text);
    if (!m) throw fail(`bad chunk line '${printable(text, 40)}'`, pos);
    if (m[2]) extensions.push(m[2]);
    const size = parseInt(m[1], 16);
    total += size;
    if (total > limits.maxBody) throw fail(`chunked body larger than ${limits.maxBody} bytes`, pos);
    pos = next;
    if (size === 0) {
      const t = readFields(buf, pos, limits, 'trailer');
      return { body: Buffer.concat(parts), trailers: t.fields, extensions, next: t.next };
    }
    if (buf.length < pos + size + 2) throw INCOMPLETE;
    parts.push(buf.subarray(pos, pos + size));
    pos += size;
    if (buf[pos] !== 0x0d || buf[pos + 1] !== 0x0a) throw fail('chunk data not followed by CRLF', pos);
    pos += 2;
  }
}

function readBody(buf, pos, framing, limits, eof) {
  if (framing.framing === 'length') {
    if (framing.length > limits.maxBody) throw fail(`Content-Length over ${limits.maxBody}`, pos);
    if (buf.length < pos + framing.length) throw INCOMPLETE;
    return { body: buf.subarray(pos, pos + framing.length), trailers: [], extensions: [], next: pos + framing.length };
  }
  if (framing.framing === 'chunked') return readChunked(buf, pos, limits);
  if (framing.framing === 'close') {
    if (!eof) throw INCOMPLETE;
    return { body: buf.subarray(pos), trailers: [], extensions: [], next: buf.length };
  }
  return { body: Buffer.alloc(0), trailers: [], extensions: [], next: pos };
}

function wrap(fn) {
  try {
    return fn();
  } catch (e) {
    if (e === INCOMPLETE) return { state: 'incomplete' };
    if (e && e.h1) return { state: 'error', reason: e.message, at: e.at };
    throw e;
  }
}

function parseRequest(buf, pos = 0, limits = DEFAULT_LIMITS) {
  limits = Object.assign({}, DEFAULT_LIMITS, limits);
  let head = null;
  const r = wrap(() => {
    const line = readLine(buf, pos, limits.maxLine, 'request line');
    const m = REQUEST_LINE.exec(line.text);
    if (!m) throw fail(`bad request line '${printable(line.text, 60)}'`, pos);
    const [, method, target, version] = m;
    if (!validTarget(method, target)) throw fail(`bad request target '${printable(target, 60)}'`, pos);
    const { fields, next } = readFields(buf, line.next, limits, 'header');
    const hosts = fieldValues(fields, 'host');
    if (hosts.length > 1) throw fail('more than one Host', pos);
    if (version === 'HTTP/1.1' && hosts.length === 0) throw fail('HTTP/1.1 without Host', pos);
    const framing = framingOf(fields, version, true, pos);
    head = { method, target, version, fields, framing: framing.framing, headEnd: next };
    const body = readBody(buf, next, framing, limits, false);
    return Object.assign({ state: 'ok' }, head,
      { body: body.body, trailers: body.trailers, extensions: body.extensions, start: pos, end: body.next });
  });
  if (r.state === 'incomplete' && head) r.head = head;
  return r;
}

// origin-form, absolute-form (http/https, no userinfo), asterisk-form (OPTIONS only),
// authority-form (CONNECT only). No fragment.
function validTarget(method, target) {
  if (target.includes('#')) return false;
  if (target === '*') return method === 'OPTIONS';
  if (method === 'CONNECT') return /^[A-Za-z0-9.-]+:[0-9]{1,5}$/.test(target);
  if (target[0] === '/') return true;
  const m = /^https?:\/\/([^/?]*)/i.exec(target);
  return !!m && m[1] !== '' && !m[1].includes('@');
}

// The response to a request of `method` (HEAD: no body) read from pos. A response without
// Content-Length or chunked is read until `eof`.
function parseResponse(buf, pos = 0, { method = 'GET', eof = false, limits = DEFAULT_LIMITS } = {}) {
  limits = Object.assign({}, DEFAULT_LIMITS, limits);
  return wrap(() => {
    const line = readLine(buf, pos, limits.maxLine, 'status line');
    const m = STATUS_LINE.exec(line.text);
    if (!m) throw fail(`bad status line '${printable(line.text, 60)}'`, pos);
    const [, version, statusText, reason] = m;
    const status = Number(statusText);
    const { fields, next } = readFields(buf, line.next, limits, 'header');
    let framing;
    if (status < 200 || status === 204 || status === 304 || method === 'HEAD') {
      framing = { framing: 'none' };
      if (status < 200 && status !== 101 &&
          (fieldValues(fields, 'content-length').length || fieldValues(fields, 'transfer-encoding').length)) {
        throw fail(`a ${status} response with framing fields`, pos);
      }
      // Still refuse what would be ambiguous to a reader that did look at them.
      framingOf(fields, version, false, pos);
    } else {
      framing = framingOf(fields, version, false, pos);
      if (framing.framing === 'none') framing = { framing: 'close' };
    }
    const body = readBody(buf, next, framing, limits, eof);
    return {
      state: 'ok', version, status, reason, fields, framing: framing.framing,
      body: body.body, trailers: body.trailers, extensions: body.extensions, start: pos, end: body.next,
    };
  });
}

function printable(s, limit = 80) {
  const t = String(s).replace(/[\x00-\x1f\x7f-\xff]/g, (c) => {
    const code = c.charCodeAt(0);
    if (code === 0x0d) return '\\r';
    if (code === 0x0a) return '\\n';
    if (code === 0x09) return '\\t';
    return `\\x${code.toString(16).padStart(2, '0')}`;
  });
  return t.length > limit ? `${t.slice(0, limit)}…` : t;
}

module.exports = { parseRequest, parseResponse, fieldValues, printable, DEFAULT_LIMITS };
