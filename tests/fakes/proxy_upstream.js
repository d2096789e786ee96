#!/usr/bin/env node
// The application behind the built-in proxy in tests/integration/proxy_test.sh (Node's
// built-in modules only). Listens on 127.0.0.1 on a kernel-chosen port and writes the port
// to the file named by argv[2].
//
// Every answer carries `X-Conn: N` (the upstream connection it came on: keep-alive reuse
// is counted here) and `X-Conn-Requests: M` (requests so far on that connection).
//   ANY  /echo…            JSON: method, url, headers, body length and SHA-256, conn
//   GET  /big?bytes=N[&chunked=1]  N bytes of a fixed pattern, Content-Length or chunked
//   GET  /slow?ms=N        answers after N ms
//   GET  /ws (Upgrade: websocket)  101, then every byte echoed back
//   GET  /healthz          200 "ok"
'use strict';
const http = require('http');
const crypto = require('crypto');
const fs = require('fs');

let connections = 0;
const pattern = Buffer.alloc(64 * 1024);
for (let i = 0; i < pattern.length; i++) pattern[i] = 97 + (i % 26);

function stamp(req, res) {
  const sock = req.socket;
  sock.requests = (sock.requests || 0) + 1;
  res.setHeader('X-Conn', String(sock.connId));
  res.setHeader('X-Conn-Requests', String(sock.requests));
}

const server = http.createServer((req, res) => {
  stamp(req, res);
  const url = new URL(req.url, 'http://upstream');
  if (url.pathname === '/big') {
    const total = Number(url.searchParams.get('bytes') || 0);
    if (url.searchParams.get('chunked') !== '1') res.setHeader('Content-Length', String(total));
    res.setHeader('Content-Type', 'application/octet-stream');
    let left = total;
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, pattern.length);
        left -= n;
        if (!res.write(pattern.subarray(0, n))) return res.once('drain', pump);
      }
      res.end();
    };
    return pump();
  }
  if (url.pathname === '/slow') {
    const ms = Number(url.searchParams.get('ms') || 1000);
    const timer = setTimeout(() => res.end('slow\n'), ms);
    res.on('close', () => clearTimeout(timer));
    return;
  }
  if (url.pathname === '/healthz') return res.end('ok\n');
  const hash = crypto.createHash('sha256');
  let length = 0;
  req.on('data', (chunk) => {
    length += chunk.length;
    hash.update(chunk);
  });
  req.on('end', () => {
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({
      method: req.method,
      url: req.url,
      httpVersion: req.httpVersion,
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      bodyLength: length,
      bodySha256: hash.digest('hex'),
      conn: req.socket.connId,
    }) + '\n');
  });
});

server.on('connection', (sock) => {
  sock.connId = ++connections;
});

server.on('upgrade', (req, socket, head) => {
  if ((req.headers.upgrade || '').toLowerCase() !== 'websocket') return socket.destroy();
  const key = req.headers['sec-websocket-key'] || '';
  const accept = crypto.createHash('sha1')
      .update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n' +
               'Connection: Upgrade\r\nSec-WebSocket-Accept: ' + accept + '\r\n\r\n');
  if (head && head.length) socket.write(head);
  socket.on('data', (d) => socket.write(d));
  socket.on('error', () => socket.destroy());
});

server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => {
  fs.writeFileSync(process.argv[2], String(server.address().port));
});
