#!/usr/bin/env node
// An HTTPS application for the proxy's TLS-to-upstream tests (tests/integration/proxy_tls_test.sh;
// Node's built-in modules only).
//
//   node tls_upstream.js PORT_FILE CERT KEY CA
//
// Listens on 127.0.0.1 (a kernel-chosen port, written to PORT_FILE) with CERT/KEY, asks for
// a client certificate signed by CA (optional), and answers every request with JSON: the
// target, the SNI name it was reached by, the client certificate's CN and whether it
// verified, and `X-Conn: N` (the connection it came on, for keep-alive counting).
'use strict';
const https = require('https');
const fs = require('fs');

const [portFile, cert, key, ca] = process.argv.slice(2);
let connections = 0;
const server = https.createServer({
  cert: fs.readFileSync(cert), key: fs.readFileSync(key), ca: fs.readFileSync(ca),
  requestCert: true, rejectUnauthorized: false,
}, (req, res) => {
  const peer = req.socket.getPeerCertificate();
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('X-Conn', String(req.socket.connId));
  res.end(JSON.stringify({
    url: req.url,
    servername: req.socket.servername || '',
    client_cn: (peer && peer.subject && peer.subject.CN) || '',
    client_verified: req.socket.authorized,
  }));
});
server.on('secureConnection', (s) => { s.connId = ++connections; });
server.listen(0, '127.0.0.1', () => fs.writeFileSync(portFile, String(server.address().port)));
