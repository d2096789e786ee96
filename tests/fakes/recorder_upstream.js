#!/usr/bin/env node
// A recording HTTP/1.1 upstream for the request-smuggling corpus (tests/fakes/smuggle.js).
//
//   node tests/fakes/recorder_upstream.js --port 0 --state-dir DIR [--exit-with-parent]
//
// Listens on 127.0.0.1 only. Once listening it writes DIR/ready.json atomically as one line,
// {"port":N,"log":"DIR/recorder.jsonl"}, and appends one JSON line per event to that log,
// synchronously, in the order the events happened:
//
//   {"seq":1,"t":1700000000000,"ev":"open","conn":1}
//   {"seq":2,"t":…,"ev":"data","conn":1,"b64":"R0VUIC8…"}        every byte received, as read
//   {"seq":3,"t":…,"ev":"request","conn":1,"method":"GET","target":"/c/x","body":0}
//   {"seq":4,"t":…,"ev":"reject","conn":1,"reason":"bare LF in the header line","at":17}
//   {"seq":5,"t":…,"ev":"mark","conn":2,"id":"cl-te"}             GET /__mark/ID (the runner)
//   {"seq":6,"t":…,"ev":"respond","conn":1,"case":"cl-and-te"}     a crafted answer was sent
//   {"seq":7,"t":…,"ev":"end","conn":1}                            this side ended the connection
//   {"seq":8,"t":…,"ev":"close","conn":1}
//
// It reads requests itself, strictly (lib/h1.js: the reading of a careful origin server),
// and answers each on the same connection, in order, keeping the connection alive:
//
//   200, Content-Length, body "rec <conn>#<n> <METHOD> <target> body=<bytes>\n" (no body
//   for HEAD); `Expect: 100-continue` gets a 100 first when the body has not arrived yet;
//   a request it cannot read gets 400, and the connection is ended (the rest is logged).
//
// A target containing /__respond/NAME is answered with the crafted raw response NAME of
// RESPONSES below (ambiguous or broken framing, for the proxy in front to refuse with 502,
// and well-formed controls to relay intact); the connection is then ended unless the case
// says `then: 'keep'`. GET /__mark/ID logs a mark (the runner sends one before each case,
// so that whatever arrives later can be told apart by case).
//
// Only Node's built-in modules; the plumbing (arguments, ready.json, signals) is
// lib/server_kit.js.
'use strict';

const fs = require('fs');
const net = require('net');
const path = require('path');
const h1 = require('./lib/h1');

// ---- crafted responses ----------------------------------------------------------------------
// expect: 'refuse' = the proxy must answer 502 (or close without an answer) and relay none of
//         the bytes named in `marker`;
//         'pass'   = relayed intact: status `status` (200) and body `body`;
//         'either' = one of the two.
// then:   'close' (default: the recorder ends the connection after the bytes) | 'keep'.
// probe:  after the answer, a fresh request through the proxy must get its own answer (not
//         bytes left over from this one).
const CRLF = '\r\n';
const R = (lines, body = '') => lines.join(CRLF) + CRLF + CRLF + body;
// A final response after which the recorder ends the connection says so, as its last field: a
// front never sends the next request on a connection that is about to be closed.
const RC = (lines, body = '') => R([...lines, 'Connection: close'], body);
const RESPONSES = {
  // Controls: well-formed, relayed intact.
  'ok-length': { expect: 'pass', body: 'hello', bytes: RC(['HTTP/1.1 200 OK', 'Content-Length: 5'], 'hello'),
    what: 'Content-Length body' },
  'ok-chunked': { expect: 'pass', body: 'hello world',
    bytes: RC(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked'], '5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n'),
    what: 'chunked body' },
  'ok-chunk-ext': { expect: 'pass', body: 'hello',
    bytes: RC(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked'], '5;ext=1\r\nhello\r\n0\r\n\r\n'),
    what: 'chunked body with a chunk extension' },
  'ok-trailer': { expect: 'pass', body: 'hello',
    bytes: RC(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked'], '5\r\nhello\r\n0\r\nX-Checksum: 1\r\n\r\n'),
    what: 'chunked body with a trailer field' },
  'ok-100-then-200': { expect: 'pass', body: 'hello',
    bytes: 'HTTP/1.1 100 Continue\r\n\r\n' + RC(['HTTP/1.1 200 OK', 'Content-Length: 5'], 'hello'),
    what: 'an interim 100 before the answer' },
  'ok-103-then-200': { expect: 'pass', body: 'hello',
    bytes: R(['HTTP/1.1 103 Early Hints', 'Link: </s.css>; rel=preload']) +
      RC(['HTTP/1.1 200 OK', 'Content-Length: 5'], 'hello'),
    what: '103 Early Hints before the answer' },
  'ok-close-delimited': { expect: 'pass', body: 'hello',
    bytes: R(['HTTP/1.1 200 OK', 'Connection: close'], 'hello'),
    what: 'a body delimited by the end of the connection' },
  'ok-204': { expect: 'pass', status: 204, body: '', bytes: RC(['HTTP/1.1 204 No Content']),
    what: '204 without a body' },
  'ok-long-header': { expect: 'pass', body: 'hello',
    bytes: RC(['HTTP/1.1 200 OK', `X-Long: ${'v'.repeat(3000)}`, 'Content-Length: 5'], 'hello'),
    what: 'a 3000-byte header value' },

  // Framing two readers can disagree on.
  'cl-and-te': { expect: 'refuse',
    bytes: RC(['HTTP/1.1 200 OK', 'Content-Length: 30', 'Transfer-Encoding: chunked'], '4\r\nEVIL\r\n0\r\n\r\n'),
    what: 'Content-Length and Transfer-Encoding' },
  'te-and-cl': { expect: 'refuse',
    bytes: RC(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked', 'Content-Length: 4'], '4\r\nEVIL\r\n0\r\n\r\n'),
    what: 'Transfer-Encoding, then Content-Length' },
  'cl-two-different': { expect: 'refuse',
    bytes: RC(['HTTP/1.1 200 OK', 'Content-Length: 4', 'Content-Length: 8'], 'EVILEVIL'),
    what: 'two different Content-Lengths' },
  'cl-two-equal': { expect: 'either', body: 'hello',
    bytes: RC(['HTTP/1.1 200 OK', 'Content-Length: 5', 'Content-Length: 5'], 'hello'),
    what: 'two equal Content-Lengths (RFC 9110 §8.6 lets a recipient merge them)' },
  'cl-list-different': { expect: 'refuse', bytes: RC(['HTTP/1.1 200 OK', 'Content-Length: 4, 8'], 'EVILEVIL'),
    what: 'Content-Length: 4, 8' },
  'cl-plus': { expect: 'refuse', bytes: RC(['HTTP/1.1 200 OK', 'Content-Length: +4'], 'EVIL'),
    what: 'Content-Length: +4' },
  'cl-negative': { expect: 'refuse', bytes: RC(['HTTP/1.1 200 OK', 'Content-Length: -1'], 'EVIL'),
    what: 'Content-Length: -1' },
  'cl-hex': { expect: 'refuse', bytes: RC(['HTTP/1.1 200 OK', 'Content-Length: 0x4'], 'EVIL'),
    what: 'Content-Length: 0x4' },
  'te-gzip': { expect: 'refuse', bytes: RC(['HTTP/1.1 200 OK', 'Transfer-Encoding: gzip'], 'EVIL'),
    what: 'Transfer-Encoding: gzip (no chunked: read until close)' },
  'te-chunked-gzip': { expect: 'refuse',
    bytes: RC(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked, gzip'], '4\r\nEVIL\r\n0\r\n\r\n'),
    what: 'Transfer-Encoding: chunked, gzip (chunked not last)' },
  'te-xchunked': { expect: 'refuse',
    bytes: RC(['HTTP/1.1 200 OK', 'Transfer-Encoding: xchunked', 'Content-Length: 4'], 'EVIL'),
    what: 'Transfer-Encoding: xchunked with a Content-Length' },
  'te-two-fields': { expect: 'refuse',
    bytes: RC(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked', 'Transfer-Encoding: identity'], '4\r\nEVIL\r\n0\r\n\r\n'),
    what: 'two Transfer-Encoding fields' },
  'te-space-before-colon': { expect: 'refuse',
    bytes: RC(['HTTP/1.1 200 OK', 'Transfer-Encoding : chunked', 'Content-Length: 11'], '4\r\nEVIL\r\n0\r\n\r\n'),
    what: '"Transfer-Encoding :" (space before the colon)' },

  // Chunks.
  'chunk-size-0x': { expect: 'refuse', bytes: RC(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked'], '0x4\r\nEVIL\r\n0\r\n\r\n'),
    what: 'chunk size 0x4' },
  'chunk-size-negative': { expect: 'refuse',
    bytes: RC(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked'], '-4\r\nEVIL\r\n0\r\n\r\n'), what: 'chunk size -4' },
  'chunk-size-space': { expect: 'refuse',
    bytes: RC(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked'], '4 \r\nEVIL\r\n0\r\n\r\n'),
    what: 'chunk size followed by a space' },
  'chunk-size-overflow': { expect: 'refuse',
    bytes: RC(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked'], 'ffffffffffffffff4\r\nEVIL\r\n0\r\n\r\n'),
    what: 'chunk size of 17 hex digits (overflows 64 bits to 4)' },
  'chunk-lf': { expect: 'refuse', bytes: RC(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked'], '4\nEVIL\n0\n\n'),
    what: 'chunk lines ended by bare LF' },
  'chunk-data-long': { expect: 'refuse',
    bytes: RC(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked'], '2\r\nEVIL\r\n0\r\n\r\n'),
    what: 'chunk data longer than its size' },
  'chunk-ext-bare-cr': { expect: 'refuse',
    bytes: RC(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked'], '4;a\rb\r\nEVIL\r\n0\r\n\r\n'),
    what: 'a bare CR in a chunk extension' },

  // Lines and fields.
  'status-lf': { expect: 'refuse', bytes: 'HTTP/1.1 200 OK\nContent-Length: 4\nConnection: close\n\nEVIL',
    what: 'status and header lines ended by bare LF' },
  'header-lf-te': { expect: 'refuse',
    bytes: 'HTTP/1.1 200 OK\r\nX-A: 1\nTransfer-Encoding: chunked\r\nContent-Length: 11\r\nConnection: close\r\n\r\n4\r\nEVIL\r\n0\r\n\r\n',
    what: 'a bare LF hiding a Transfer-Encoding inside another field' },
  'bare-cr-split': { expect: 'refuse',
    bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-A: a\rSet-Cookie: EVIL=1\r\nConnection: close\r\n\r\nEVIL',
    what: 'a bare CR in a value (response splitting for readers that end lines at CR)' },
  'obs-fold': { expect: 'refuse', bytes: RC(['HTTP/1.1 200 OK', 'Content-Length: 4', 'X-A: a', ' Set-Cookie: EVIL=1'], 'EVIL'),
    what: 'obs-fold' },
  'nul-in-value': { expect: 'refuse', bytes: RC(['HTTP/1.1 200 OK', 'Content-Length: 4', 'X-A: a\0Set-Cookie: EVIL'], 'EVIL'),
    what: 'NUL in a value' },
  'bad-field-name': { expect: 'refuse', bytes: RC(['HTTP/1.1 200 OK', 'Content-Length: 4', 'X A: EVIL'], 'EVIL'),
    what: 'a space inside a field name' },
  'cl-space-before-colon': { expect: 'refuse',
    bytes: RC(['HTTP/1.1 200 OK', 'Content-Length : 4', 'Transfer-Encoding: chunked'], '4\r\nEVIL\r\n0\r\n\r\n'),
    what: '"Content-Length :" beside a Transfer-Encoding' },
  'status-four-digits': { expect: 'refuse', bytes: RC(['HTTP/1.1 2000 OK', 'Content-Length: 4'], 'EVIL'),
    what: 'a four-digit status' },
  'status-two-digits': { expect: 'refuse', bytes: RC(['HTTP/1.1 20 OK', 'Content-Length: 4'], 'EVIL'),
    what: 'a two-digit status' },
  'version-2': { expect: 'refuse', bytes: RC(['HTTP/2.0 200 OK', 'Content-Length: 4'], 'EVIL'),
    what: 'HTTP/2.0 in an HTTP/1.1 status line' },
  'http09': { expect: 'refuse', bytes: 'EVIL EVIL EVIL\r\n', what: 'no status line (an HTTP/0.9 answer)' },
  'unsolicited-101': { expect: 'refuse',
    bytes: R(['HTTP/1.1 101 Switching Protocols', 'Upgrade: evil', 'Connection: Upgrade'], 'EVIL'),
    what: '101 Switching Protocols to a request that asked for no upgrade' },
  '1xx-with-body': { expect: 'refuse',
    bytes: R(['HTTP/1.1 100 Continue', 'Content-Length: 4'], 'EVIL') + RC(['HTTP/1.1 200 OK', 'Content-Length: 5'], 'hello'),
    what: 'a 100 with a Content-Length and a body, then the answer' },

  // Bytes beyond the answer: they belong to no request, and must not answer the next one.
  'extra-response': { expect: 'either', body: 'hello', then: 'keep', probe: true,
    bytes: R(['HTTP/1.1 200 OK', 'Content-Length: 5'], 'hello') + R(['HTTP/1.1 200 OK', 'X-Evil: EVIL', 'Content-Length: 4'], 'EVIL'),
    what: 'a second, unasked-for response after the answer (response queue poisoning)' },
  '204-with-body': { expect: 'either', status: 204, body: '', then: 'keep', probe: true,
    bytes: R(['HTTP/1.1 204 No Content', 'Content-Length: 4'], 'EVIL'),
    what: 'a 204 followed by body bytes (a 204 has none)' },
  'head-with-body': { expect: 'either', method: 'HEAD', body: '', then: 'keep', probe: true,
    bytes: R(['HTTP/1.1 200 OK', 'Content-Length: 4'], 'EVIL'),
    what: 'an answer to HEAD followed by body bytes' },
};

// ---- the server -----------------------------------------------------------------------------
function main() {
  const serverKit = require('./lib/server_kit');
  const kit = serverKit.forFake('recorder_upstream', {
    usage: 'usage: node recorder_upstream.js --port N --state-dir DIR [--exit-with-parent]\n' +
      '  --port 0 picks a free port; DIR/ready.json = {"port":N,"log":"DIR/recorder.jsonl"}\n',
    printableLimit: 200,
  });
  const opts = kit.parseArgs(process.argv.slice(2), { flags: { '--exit-with-parent': 'exitWithParent' } });
  fs.mkdirSync(opts.stateDir, { recursive: true });
  const logFile = path.join(opts.stateDir, 'recorder.jsonl');
  fs.writeFileSync(logFile, '');
  const logFd = fs.openSync(logFile, 'a');
  let seq = 0;
  const record = (obj) => {
    seq += 1;
    fs.writeSync(logFd, JSON.stringify(Object.assign({ seq, t: Date.now() }, obj)) + '\n');
  };

  let connSeq = 0;
  const server = net.createServer((sock) => serve(sock, ++connSeq, record, kit));
  server.on('error', (err) => {
    kit.complain(err.message);
    process.exit(1);
  });
  kit.handleProcessEvents();
  if (opts.exitWithParent) kit.exitWithParent();
  kit.listen(server, opts, (port) => ({ port, log: logFile }), () => `log ${logFile}`);
}

function serve(sock, conn, record, kit) {
  record({ ev: 'open', conn });
  let buf = Buffer.alloc(0);
  let ended = false;      // this side decided to end the connection: read no more requests
  let n = 0;
  let continued = false;  // a 100 was sent for the request being read
  const finish = () => {
    if (ended) return;
    ended = true;
    record({ ev: 'end', conn });
    // FIN after what was written, then drop the socket: a peer that writes more gets a reset.
    sock.end(() => sock.destroy());
  };
  sock.on('data', (d) => {
    record({ ev: 'data', conn, b64: d.toString('base64') });
    if (ended) return;
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    while (!ended && buf.length) {
      const r = h1.parseRequest(buf, 0);
      if (r.state === 'incomplete') {
        if (r.head && !continued && r.head.framing !== 'none' &&
            h1.fieldValues(r.head.fields, 'expect').some((v) => v.toLowerCase() === '100-continue')) {
          continued = true;
          sock.write('HTTP/1.1 100 Continue\r\n\r\n');
        }
        break;
      }
      if (r.state === 'error') {
        record({ ev: 'reject', conn, reason: r.reason, at: r.at });
        sock.write('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
        finish();
        break;
      }
      buf = buf.subarray(r.end);
      continued = false;
      n += 1;
      answer(sock, conn, n, r, record, finish);
    }
  });
  sock.on('end', () => {
    record({ ev: 'eof', conn });
    finish();
  });
  sock.on('close', () => record({ ev: 'close', conn }));
  sock.on('error', (err) => record({ ev: 'error', conn, error: String(err.code || err.message) }));
  sock.setNoDelay(true);
  void kit;
}

function answer(sock, conn, n, req, record, finish) {
  record({ ev: 'request', conn, n, method: req.method, target: req.target, body: req.body.length });
  const mark = /^\/__mark\/([^/?]+)$/.exec(req.target);
  if (mark) record({ ev: 'mark', conn, id: decodeURIComponent(mark[1]) });
  const crafted = /\/__respond\/([A-Za-z0-9_-]+)/.exec(req.target);
  if (crafted && RESPONSES[crafted[1]]) {
    const c = RESPONSES[crafted[1]];
    record({ ev: 'respond', conn, case: crafted[1] });
    sock.write(Buffer.from(c.bytes, 'latin1'));
    if ((c.then || 'close') === 'close') finish();
    return;
  }
  const body = Buffer.from(`rec ${conn}#${n} ${req.method} ${req.target} body=${req.body.length}\n`, 'latin1');
  const close = h1.fieldValues(req.fields, 'connection').some((v) => /(^|,)\s*close\s*(,|$)/i.test(v)) ||
    (req.version === 'HTTP/1.0' &&
     !h1.fieldValues(req.fields, 'connection').some((v) => /keep-alive/i.test(v)));
  sock.write(Buffer.concat([
    Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n` +
      (close ? 'Connection: close\r\n' : '') + '\r\n'),
    req.method === 'HEAD' ? Buffer.alloc(0) : body,
  ]));
  if (close) finish();
}

module.exports = { RESPONSES };

if (require.main === module) main();
