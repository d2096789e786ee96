#!/usr/bin/env node
// A minimal SPOP client that stands where HAProxy's SPOE filter does: one connection, the
// HAPROXY-HELLO handshake, then one NOTIFY (message "portcullis-request", the arguments
// `portcullis haproxy-config` declares) per request, and the agent's ACK printed as text.
// Built-in modules only (Node.js >= 20), 127.0.0.1 only.
//
//   node tests/fakes/spoe_client.js PORT REQUESTS.jsonl
//
// Each line of REQUESTS.jsonl is one request:
//   {"method":"GET","path":"/orders/1","query":"a=b","headers":[["host","x"],...],
//    "ip":"127.0.0.1","ssl":false,"ssl_dn":"","ssl_verify":0}
// Output, per request: `== N` then one `set-var SCOPE NAME TYPE VALUE` line per action,
// in the order the agent sent them. Exit 0 when every request got an ACK, 1 otherwise.
'use strict';
const net = require('net');
const fs = require('fs');

const [port, requestsFile] = process.argv.slice(2);
if (!port || !requestsFile) {
  console.error('usage: spoe_client.js PORT REQUESTS.jsonl');
  process.exit(2);
}
const requests = fs.readFileSync(requestsFile, 'utf8').split('\n').filter((l) => l.trim())
  .map((l) => JSON.parse(l));

// ---- encoding (SPOE.txt §3.1) ----------------------------------------------------------
function varint(n) {
  const out = [];
  if (n < 240) return Buffer.from([n]);
  out.push((n & 0xff) | 240);
  n = Math.floor((n - 240) / 16);
  while (n >= 128) {
    out.push((n & 0xff) | 128);
    n = Math.floor((n - 128) / 128);
  }
  out.push(n);
  return Buffer.from(out);
}
const str = (s) => { const b = Buffer.from(s, 'utf8'); return Buffer.concat([varint(b.length), b]); };
const typed = {
  string: (s) => Buffer.concat([Buffer.from([8]), str(s)]),
  binary: (b) => Buffer.concat([Buffer.from([9]), varint(b.length), b]),
  bool: (v) => Buffer.from([1 | (v ? 0x10 : 0)]),
  uint32: (n) => Buffer.concat([Buffer.from([3]), varint(n)]),
  int32: (n) => Buffer.concat([Buffer.from([2]), varint(n)]),
  ipv4: (s) => Buffer.from([6, ...s.split('.').map(Number)]),
};
function frame(type, flags, streamId, frameId, payload) {
  const body = Buffer.concat([Buffer.from([type]), Buffer.alloc(4), varint(streamId), varint(frameId), payload]);
  body.writeUInt32BE(flags, 1);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, body]);
}
function hdrsBin(headers) {
  const parts = [];
  for (const [n, v] of headers) parts.push(str(n), str(v));
  parts.push(Buffer.from([0, 0]));
  return Buffer.concat(parts);
}
function notify(req, streamId) {
  const args = [
    ['method', typed.string(req.method)],
    ['path', typed.string(req.path)],
    ['query', req.query === undefined ? Buffer.from([0]) : typed.string(req.query)],
    ['headers', typed.binary(hdrsBin(req.headers || []))],
    ['ip', typed.ipv4(req.ip || '127.0.0.1')],
    ['ssl', typed.bool(!!req.ssl)],
    ['ssl_dn', typed.string(req.ssl_dn || '')],
    ['ssl_verify', typed.int32(req.ssl_verify || 0)],
  ];
  const parts = [str('portcullis-request'), Buffer.from([args.length])];
  for (const [name, value] of args) parts.push(str(name), value);
  return frame(3, 1, streamId, 1, Buffer.concat(parts));
}

// ---- decoding --------------------------------------------------------------------------
class Reader {
  constructor(buf) { this.b = buf; this.p = 0; }
  byte() { if (this.p >= this.b.length) throw new Error('truncated'); return this.b[this.p++]; }
  varint() {
    let n = this.byte();
    if (n < 240) return n;
    let shift = 4;
    let b;
    do {
      b = this.byte();
      n += b * 2 ** shift;
      shift += 7;
    } while (b >= 128);
    return n;
  }
  bytes(n) { if (this.p + n > this.b.length) throw new Error('truncated'); const s = this.b.subarray(this.p, this.p + n); this.p += n; return s; }
  string() { return this.bytes(this.varint()).toString('utf8'); }
  value() {
    const t = this.byte();
    switch (t & 0x0f) {
      case 0: return ['null', ''];
      case 1: return ['bool', (t & 0x10) ? 'true' : 'false'];
      case 2: return ['int32', String(this.varint())];
      case 3: return ['uint32', String(this.varint())];
      case 4: return ['int64', String(this.varint())];
      case 5: return ['uint64', String(this.varint())];
      case 6: return ['ipv4', Array.from(this.bytes(4)).join('.')];
      case 8: return ['string', JSON.stringify(this.string())];
      case 9: return ['binary', this.bytes(this.varint()).toString('hex')];
      default: throw new Error(`type ${t & 0x0f}`);
    }
  }
}
const SCOPES = ['proc', 'sess', 'txn', 'req', 'res'];

function describe(type, r) {
  if (type === 101 || type === 102) {  // AGENT-HELLO, AGENT-DISCONNECT: a KV list
    const kv = [];
    while (r.p < r.b.length) { const k = r.string(); kv.push(`${k}=${r.value()[1]}`); }
    return kv.join(' ');
  }
  const lines = [];  // ACK: actions
  while (r.p < r.b.length) {
    const action = r.byte();
    const nargs = r.byte();
    if (action === 1 && nargs === 3) {
      const scope = SCOPES[r.byte()] || '?';
      const name = r.string();
      const [t, v] = r.value();
      lines.push(`set-var ${scope} ${name} ${t} ${v}`);
    } else {
      throw new Error(`action ${action} with ${nargs} arguments`);
    }
  }
  return lines.join('\n');
}

// ---- the conversation ------------------------------------------------------------------
const sock = net.connect({ host: '127.0.0.1', port: Number(port) });
let pending = Buffer.alloc(0);
let next = 0;
let acked = 0;
const timer = setTimeout(() => { console.error('spoe_client: no answer within 30 s'); process.exit(1); }, 30000);

function send() {
  if (next >= requests.length) { sock.end(); return; }
  sock.write(notify(requests[next], next + 1));
  next++;
}
sock.on('connect', () => {
  const hello = Buffer.concat([
    str('supported-versions'), typed.string('2.0'),
    str('max-frame-size'), typed.uint32(16380),
    str('capabilities'), typed.string('pipelining'),
  ]);
  sock.write(frame(1, 1, 0, 0, hello));
});
sock.on('data', (chunk) => {
  pending = Buffer.concat([pending, chunk]);
  while (pending.length >= 4) {
    const len = pending.readUInt32BE(0);
    if (pending.length < 4 + len) break;
    const r = new Reader(pending.subarray(4, 4 + len));
    pending = pending.subarray(4 + len);
    const type = r.byte();
    r.bytes(4);
    r.varint();
    r.varint();
    if (type === 101) {
      send();
    } else if (type === 103) {
      console.log(`== ${acked + 1}`);
      const text = describe(type, r);
      if (text) console.log(text);
      acked++;
      send();
    } else {
      console.log(`agent-disconnect ${describe(type, r)}`);
      sock.destroy();
    }
  }
});
sock.on('close', () => {
  clearTimeout(timer);
  process.exit(acked === requests.length ? 0 : 1);
});
sock.on('error', (e) => { console.error(`spoe_client: ${e.message}`); process.exit(1); });
