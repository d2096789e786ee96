#!/usr/bin/env node
// A kept-alive HTTPS connection across a certificate reload (tests/integration/proxy_tls_test.sh;
// Node's built-in modules only).
//
//   node tls_keepalive.js PORT CA_FILE SERVERNAME PATH SECONDS
//
// Sends PATH on one connection, then every 100 ms opens a new connection only to read the
// certificate served, until its fingerprint differs from the first connection's (at most
// SECONDS). Then sends PATH again on the first connection. Prints one JSON line: the
// statuses, whether the second request reused the first socket, and both fingerprints.
'use strict';
const https = require('https');
const tls = require('tls');
const fs = require('fs');

const [port, caFile, servername, path, seconds] = process.argv.slice(2);
const ca = fs.readFileSync(caFile);
const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });

function get() {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path, ca, servername, agent }, (res) => {
      const fingerprint = res.socket.getPeerCertificate().fingerprint256;
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, reused: req.reusedSocket, fingerprint }));
    });
    req.on('error', reject);
  });
}

function servedFingerprint() {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca, servername }, () => {
      const fp = s.getPeerCertificate().fingerprint256;
      s.end();
      resolve(fp);
    });
    s.on('error', reject);
  });
}

(async () => {
  const first = await get();
  const deadline = Date.now() + Number(seconds) * 1000;
  let now = first.fingerprint;
  while (now === first.fingerprint && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    now = await servedFingerprint();
  }
  const second = await get();
  console.log(JSON.stringify({
    first_status: first.status, second_status: second.status, reused: second.reused,
    old_fingerprint: first.fingerprint, second_fingerprint: second.fingerprint,
    new_fingerprint: now,
  }));
  agent.destroy();
})().catch((e) => {
  console.log(JSON.stringify({ error: String(e) }));
  process.exit(1);
});
