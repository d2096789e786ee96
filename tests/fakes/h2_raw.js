#!/usr/bin/env node
// Crafted HTTP/2 requests that a well-behaved client library refuses to send
// (tests/integration/proxy_tls_test.sh; Node's built-in modules only).
//
//   node h2_raw.js PORT CA_FILE [rapid-reset]
//
// Each case is one request on a new TLS connection (ALPN h2), its header block written by
// hand (HPACK literals, never indexed, no Huffman). Prints one JSON line per case:
// {"case":NAME,"outcome":"headers"|"rst"|"goaway"|"closed"|"timeout","path":"/h2raw/NAME"}:
// what the server did with the stream. The test then checks the audit log: a request the
// server reset must never have been decided on, let alone forwarded.
'use strict';
const tls = require('tls');
const fs = require('fs');

const [port, caFile] = process.argv.slice(2);
const ca = fs.readFileSync(caFile);

function hpackInt(value, prefixBits, firstByte) {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([firstByte | value]);
  const out = [firstByte | max];
  value -= max;
  while (value >= 128) {
    out.push((value % 128) + 128);
    value = Math.floor(value / 128);
  }
  out.push(value);
  return Buffer.from(out);
}
function literal(name, value) {  // literal header field without indexing, new name
  const n = Buffer.from(name, 'latin1');
  const v = Buffer.from(value, 'latin1');
  return Buffer.concat([Buffer.from([0]), hpackInt(n.length, 7, 0), n, hpackInt(v.length, 7, 0), v]);
}
function frame(type, flags, stream, payload) {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}
const HEADERS = 1, DATA = 0, RST = 3, SETTINGS = 4, GOAWAY = 7;
const END_STREAM = 1, END_HEADERS = 4, ACK = 1;

function base(name, extra = {}) {
  return [[':method', extra.method || 'GET'], [':scheme', 'https'],
    [':authority', `127.0.0.1:${port}`], [':path', `/h2raw/${name}`]];
}
const cases = [
  { name: 'control', fields: (n) => [...base(n), ['user-agent', 'h2raw']] },
  { name: 'crlf-in-value', fields: (n) => [...base(n), ['x-a', '1\r\nauthorization: Bearer forged']] },
  { name: 'lf-in-value', fields: (n) => [...base(n), ['x-a', '1\nx-admin: yes']] },
  { name: 'nul-in-value', fields: (n) => [...base(n), ['x-a', 'a\0b']] },
  { name: 'upper-case-name', fields: (n) => [...base(n), ['X-Upper', '1']] },
  { name: 'space-in-name', fields: (n) => [...base(n), ['x a', '1']] },
  { name: 'colon-in-name', fields: (n) => [...base(n), ['x:a', '1']] },
  { name: 'transfer-encoding', fields: (n) => [...base(n), ['transfer-encoding', 'chunked']] },
  { name: 'connection', fields: (n) => [...base(n), ['connection', 'close']] },
  { name: 'te-gzip', fields: (n) => [...base(n), ['te', 'gzip']] },
  { name: 'host-differs', fields: (n) => [...base(n), ['host', 'admin.internal']] },
  { name: 'space-in-path', fields: (n) => [[':method', 'GET'], [':scheme', 'https'],
    [':authority', `127.0.0.1:${port}`], [':path', `/h2raw/${n} HTTP/1.1\r\nx: y`]] },
  { name: 'extended-connect', fields: (n) => [[':method', 'CONNECT'], [':protocol', 'websocket'],
    [':scheme', 'https'], [':authority', `127.0.0.1:${port}`], [':path', `/h2raw/${n}`]] },
  { name: 'too-many-fields', fields: (n) => {
    const f = base(n);
    for (let i = 0; i < 150; i++) f.push([`x-f${i}`, 'v']);
    return f;
  } },
  { name: 'length-mismatch', body: 'ten bytes!', fields: (n) => [...base(n, { method: 'POST' }),
    ['content-length', '5']] },
];

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

// One TLS connection (ALPN h2): `send(sock)` writes the client's frames once connected;
// `onFrame(type, flags, stream)` sees every frame the server sends and returns an outcome
// to end with (or nothing). Resolves {case, outcome, path}; a GOAWAY, an error, a close or
// `timeoutMs` end it too.
function exchange(name, send, onFrame, timeoutMs) {
  return new Promise((resolve) => {
    let done = false;
    const finish = (outcome) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ case: name, outcome, path: `/h2raw/${name}` });
    };
    const sock = tls.connect({ host: '127.0.0.1', port: Number(port), ca, ALPNProtocols: ['h2'],
      servername: 'a.test' }, () => {
      if (sock.alpnProtocol !== 'h2') return finish('no-h2');
      send(sock, finish);
    });
    let buf = Buffer.alloc(0);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        const type = buf[3], flags = buf[4], stream = buf.readUInt32BE(5) & 0x7fffffff;
        buf = buf.subarray(9 + len);
        if (type === SETTINGS && !(flags & ACK)) sock.write(frame(SETTINGS, ACK, 0, Buffer.alloc(0)));
        if (type === GOAWAY) return finish('goaway');
        const outcome = onFrame(type, flags, stream);
        if (outcome) return finish(outcome);
      }
    });
    sock.on('error', () => finish('closed'));
    sock.on('close', () => finish('closed'));
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
  });
}

// One crafted request on stream 1: "headers" when it is answered, "rst" when it is reset.
function run(c) {
  return exchange(c.name, (sock) => {
    const block = Buffer.concat(c.fields(c.name).map(([k, v]) => literal(k, v)));
    const flags = END_HEADERS | (c.body ? 0 : END_STREAM);
    const parts = [PREFACE, frame(SETTINGS, 0, 0, Buffer.alloc(0)), frame(HEADERS, flags, 1, block)];
    if (c.body) parts.push(frame(DATA, END_STREAM, 1, Buffer.from(c.body)));
    sock.write(Buffer.concat(parts));
  }, (type, flags, stream) => {
    if (stream === 1 && type === HEADERS) return 'headers';
    if (stream === 1 && type === RST) return 'rst';
    return undefined;
  }, 10000);
}

// Rapid reset (CVE-2023-44487): 2000 streams on one connection, each HEADERS followed at
// once by RST_STREAM. Outcome "goaway" when the server ends the connection (nghttp2's reset
// rate limit), "survived" if all 2000 were taken without it.
function rapidReset() {
  return exchange('rapid-reset', (sock, finish) => {
    const parts = [PREFACE, frame(SETTINGS, 0, 0, Buffer.alloc(0))];
    const block = Buffer.concat(base('rapid-reset').map(([k, v]) => literal(k, v)));
    const cancel = Buffer.alloc(4);
    cancel.writeUInt32BE(8);  // CANCEL
    for (let i = 0; i < 2000; i++) {
      const id = 2 * i + 1;
      parts.push(frame(HEADERS, END_HEADERS | END_STREAM, id, block), frame(RST, 0, id, cancel));
    }
    sock.write(Buffer.concat(parts), () => setTimeout(() => finish('survived'), 2000));
  }, () => undefined, 20000);
}

(async () => {
  if (process.argv[4] === 'rapid-reset') {
    console.log(JSON.stringify(await rapidReset()));
    return;
  }
  for (const c of cases) console.log(JSON.stringify(await run(c)));
})();
