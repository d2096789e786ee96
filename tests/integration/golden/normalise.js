#!/usr/bin/env node
// Masks what changes from run to run in the golden test's output, nothing else:
//   node normalise.js audit   < audit.jsonl   ts, latency_us, request_id, functions' ms, and
//                                             the clock in a detail ("now N", "retry in Ns")
//   node normalise.js json    < body.json     loopback ports, uptime and start times
//   node normalise.js metrics < metrics.txt   series names with their labels, no values
'use strict';
const mode = process.argv[2];
const input = require('fs').readFileSync(0, 'utf8');
const ports = (s) => s.replace(/127\.0\.0\.1:[0-9]+/g, '127.0.0.1:PORT');

function maskKeys(value, keys) {
  if (Array.isArray(value)) return value.map((v) => maskKeys(v, keys));
  if (value && typeof value === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = keys.includes(k) ? '*' : maskKeys(v, keys);
    return out;
  }
  return value;
}

if (mode === 'audit') {
  for (const line of input.split('\n')) {
    if (!line) continue;
    const masked = JSON.stringify(maskKeys(JSON.parse(line), ['ts', 'latency_us', 'request_id', 'ms']));
    console.log(masked.replace(/now [0-9]+/g, 'now *').replace(/retry in [0-9]+s/g, 'retry in *s'));
  }
} else if (mode === 'json') {
  const masked = maskKeys(JSON.parse(input), ['uptime_s', 'uptime', 'started', 'started_at',
    'loaded_at', 'pid', 'until']);
  console.log(ports(JSON.stringify(masked)));
} else if (mode === 'metrics') {
  const names = new Set();
  for (const line of input.split('\n')) {
    if (!line || line.startsWith('#')) {
      if (line.startsWith('# TYPE')) names.add(line);
      continue;
    }
    names.add(line.replace(/ [^ ]+$/, ''));
  }
  console.log([...names].sort().join('\n'));
} else {
  console.error('usage: normalise.js audit|json|metrics');
  process.exit(2);
}
