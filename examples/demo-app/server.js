#!/usr/bin/env node
// The demo application behind portcullis' built-in proxy in `make run`: answers every
// request with what it was told about the caller (the identity headers portcullis set).
//   node examples/demo-app/server.js [PORT]        (default 9300, on 127.0.0.1)
'use strict';
const http = require('http');

const port = Number(process.argv[2] || 9300);
http.createServer((req, res) => {
  const body = {
    app: 'demo-app',
    method: req.method,
    path: req.url,
    user: req.headers['x-user'] || null,
    scopes: req.headers['x-scopes'] || null,
    forwarded_for: req.headers['x-forwarded-for'] || null,
    request_id: req.headers['x-request-id'] || null,
  };
  res.setHeader('Content-Type', 'application/json');
  res.end(JSON.stringify(body, null, 2) + '\n');
}).listen(port, '127.0.0.1');
