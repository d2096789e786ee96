'use strict';
// A small HTTP load client for the lambda-local integration test (built-in modules only):
//
//   node load.js URL TOTAL CONCURRENCY [Header: value]...
//
// Sends TOTAL GET requests over CONCURRENCY keep-alive connections and prints one JSON line:
// {"total":N,"status":{"200":n,...},"errors":n,"ms":elapsed,"p50_ms":x,"p99_ms":y}.
// Gives up after 60 s (exit 1).
const http = require('node:http');

const [url, totalArg, concArg, ...headerArgs] = process.argv.slice(2);
const total = Number(totalArg);
const concurrency = Number(concArg);
if (!url || !(total > 0) || !(concurrency > 0)) {
  console.error('usage: node load.js URL TOTAL CONCURRENCY [Header: value]...');
  process.exit(2);
}
const headers = {};
for (const h of headerArgs) {
  const i = h.indexOf(':');
  headers[h.slice(0, i).trim()] = h.slice(i + 1).trim();
}
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
const status = {};
const latencies = [];
let sent = 0;
let errors = 0;
const t0 = process.hrtime.bigint();
setTimeout(() => {
  console.error(`load.js: gave up after 60 s (${latencies.length} of ${total} done)`);
  process.exit(1);
}, 60000).unref();

function one() {
  return new Promise((resolve) => {
    const start = process.hrtime.bigint();
    const req = http.get(url, { agent, headers }, (res) => {
      res.resume();
      res.on('end', () => {
        status[res.statusCode] = (status[res.statusCode] || 0) + 1;
        latencies.push(Number(process.hrtime.bigint() - start) / 1e6);
        resolve();
      });
    });
    req.on('error', () => {
      errors += 1;
      latencies.push(Number(process.hrtime.bigint() - start) / 1e6);
      resolve();
    });
  });
}

async function worker() {
  while (sent < total) {
    sent += 1;
    await one();
  }
}

Promise.all(Array.from({ length: concurrency }, worker)).then(() => {
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))];
  console.log(
    JSON.stringify({ total, status, errors, ms: Math.round(ms), p50_ms: pct(0.5), p99_ms: pct(0.99) }),
  );
  agent.destroy();
});
