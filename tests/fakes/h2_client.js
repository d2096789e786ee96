#!/usr/bin/env node
// HTTP/2 client behaviours for tests/integration/proxy_tls_test.sh (Node's built-in modules
// only). Prints one JSON line.
//
//   node h2_client.js reset PORT CA_FILE BIG_PATH OK_PATH
//     GET BIG_PATH, cancel the stream (RST_STREAM CANCEL) after 1 MiB of its body, then GET
//     OK_PATH on the same connection: {"received":N,"after":STATUS}
//   node h2_client.js stall PORT CA_FILE BIG_PATH SECONDS
//     GET BIG_PATH and stop reading after 1 MiB for SECONDS (the window closes), then read
//     on to the end: {"received":N,"status":S}
'use strict';
const http2 = require('http2');
const fs = require('fs');

const [mode, port, caFile, bigPath, arg] = process.argv.slice(2);
const session = http2.connect(`https://127.0.0.1:${port}`, {
  ca: fs.readFileSync(caFile), servername: 'a.test',
  settings: { initialWindowSize: 65535 },
});
session.on('error', (e) => {
  console.log(JSON.stringify({ error: String(e) }));
  process.exit(1);
});

function get(path) {
  return new Promise((resolve) => {
    const req = session.request({ ':path': path });
    let status = 0, received = 0;
    req.on('response', (h) => { status = h[':status']; });
    req.on('data', (d) => { received += d.length; });
    req.on('end', () => resolve({ status, received }));
    req.on('error', () => resolve({ status, received }));
  });
}

if (mode === 'reset') {
  const req = session.request({ ':path': bigPath });
  let received = 0;
  req.on('data', async (d) => {
    received += d.length;
    if (received >= 1 << 20 && !req.destroyed) {
      req.close(http2.constants.NGHTTP2_CANCEL);
      const after = await get(arg);
      console.log(JSON.stringify({ received, after: after.status }));
      session.close();
    }
  });
} else if (mode === 'stall') {
  const req = session.request({ ':path': bigPath });
  let received = 0, status = 0, paused = false;
  req.on('response', (h) => { status = h[':status']; });
  req.on('data', (d) => {
    received += d.length;
    if (!paused && received >= 1 << 20) {
      paused = true;
      req.pause();
      console.error(`stalled at ${received}`);
      setTimeout(() => req.resume(), Number(arg) * 1000);
    }
  });
  req.on('end', () => {
    console.log(JSON.stringify({ received, status }));
    session.close();
  });
}
