// The plumbing every HTTP fake of tests/fakes needs, kept in one place so the fakes hold only
// what they play: the command line (--port, --state-dir, --tls-cert/--tls-key and the fake's
// own options), one-line logging, answers, bounded bodies, ready.json, the HTTP(S) server and
// the process' exits. Node.js >= 20, built-in modules only.
//
//   const kit = require('./lib/server_kit').forFake('oidc_server', { usage: '...' });
//
// Every message names the fake, so the log lines of two fakes in one test stay apart.
'use strict';

const fs = require('fs');
const http = require('http');
const https = require('https');
const path = require('path');

// Control characters and non-ASCII become '?', so a log line stays one printable line
// whatever a client sent; cut to `limit` characters.
function printable(s, limit = Infinity) {
  return String(s).replace(/[^\x20-\x7e]/g, '?').slice(0, limit);
}

// HEAD answers carry the headers (Content-Length included) but no body. False when the
// answer could not be sent (already sent, or the client is gone).
function send(res, status, body, headers = {}) {
  if (res.headersSent || res.destroyed) return false;
  const buf = Buffer.isBuffer(body) ? body : Buffer.from(body);
  res.writeHead(status, Object.assign({ 'Content-Length': buf.length }, headers));
  res.end(res.req.method === 'HEAD' ? undefined : buf);
  return true;
}

function sendJson(res, status, obj, headers = {}) {
  return send(res, status, JSON.stringify(obj) + '\n',
    Object.assign({ 'Content-Type': 'application/json' }, headers));
}

// Reads the body, at most `limit` bytes. Each fake answers a failure in its own dialect, so
// the errors come from `errors`: tooLarge() (also for a declared Content-Length over the
// limit when checkDeclared), failed(err) for a stream error, and aborted() when given.
function readBody(req, limit, errors) {
  return new Promise((resolve, reject) => {
    if (errors.checkDeclared) {
      const declared = req.headers['content-length'];
      if (declared !== undefined && Number(declared) > limit) {
        reject(errors.tooLarge());
        return;
      }
    }
    const chunks = [];
    let size = 0;
    let done = false;
    const finish = (settle, value) => {
      if (done) return;
      done = true;
      settle(value);
    };
    req.on('data', (chunk) => {
      if (done) return;
      size += chunk.length;
      if (size > limit) {
        finish(reject, errors.tooLarge());
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!done) finish(resolve, Buffer.concat(chunks));
    });
    req.on('error', (err) => {
      if (!done) finish(reject, errors.failed(err));
    });
    if (errors.aborted) {
      req.on('aborted', () => {
        if (!done) finish(reject, errors.aborted());
      });
    }
  });
}

// The kit bound to one fake: `name` starts its log lines and messages, `usage` is the text
// printed after a command-line error, `printableLimit` caps what printable() keeps.
function forFake(name, { usage: usageText, printableLimit = Infinity }) {
  const kit = {};
  kit.printable = (s) => printable(s, printableLimit);
  // A line with a timestamp (the request log, start, signals, client errors).
  kit.log = (text) => process.stderr.write(`${new Date().toISOString()} ${name} ${text}\n`);
  // A line without one (failures).
  kit.complain = (text) => process.stderr.write(`${name}: ${text}\n`);

  // A bad command line (or --help, without a message): exit status 2.
  kit.usage = (message) => {
    if (message) kit.complain(message);
    process.stderr.write(usageText);
    process.exit(2);
  };

  // --opt VALUE or --opt=VALUE. `options` maps the fake's own options to keys of the result
  // (with their `defaults`); `flags` are options without a value; keys in `lists` collect
  // every value given. --port, --state-dir and --tls-cert/--tls-key are every fake's.
  kit.parseArgs = (argv, { options = {}, flags = {}, lists = [], defaults = {} } = {}) => {
    const opts = Object.assign({ port: null, stateDir: null, tlsCert: null, tlsKey: null }, defaults);
    const names = Object.assign({
      '--port': 'port', '--state-dir': 'stateDir', '--tls-cert': 'tlsCert', '--tls-key': 'tlsKey',
    }, options);
    for (let i = 0; i < argv.length; i++) {
      let arg = argv[i];
      let value;
      const eq = arg.indexOf('=');
      if (arg.startsWith('--') && eq > 0) {
        value = arg.slice(eq + 1);
        arg = arg.slice(0, eq);
      }
      if (arg === '--help' || arg === '-h') kit.usage();
      if (Object.prototype.hasOwnProperty.call(flags, arg) && value === undefined) {
        opts[flags[arg]] = true;
        continue;
      }
      const key = names[arg];
      if (!key) kit.usage(`unknown argument '${arg}'`);
      if (value === undefined) {
        if (i + 1 >= argv.length) kit.usage(`${arg} needs a value`);
        value = argv[++i];
      }
      if (lists.includes(key)) opts[key].push(value);
      else opts[key] = value;
    }
    if (opts.port === null) kit.usage('--port is required');
    if (!/^\d{1,5}$/.test(String(opts.port)) || Number(opts.port) > 65535) kit.usage(`bad --port '${opts.port}'`);
    opts.port = Number(opts.port);
    if (!opts.stateDir) kit.usage('--state-dir is required');
    if (!!opts.tlsCert !== !!opts.tlsKey) kit.usage('--tls-cert and --tls-key go together');
    return opts;
  };

  // HTTPS when opts has --tls-cert/--tls-key, else HTTP; unreadable or bad TLS files are a
  // command-line error. Client errors get one log line, then a 400 when an HTTP answer
  // still makes sense (not after a failed TLS handshake or a reset), else a close. A server
  // error (the port is taken) exits 1.
  kit.createServer = (opts, onRequest) => {
    let server;
    if (opts.tlsCert) {
      let cert;
      let key;
      try {
        cert = fs.readFileSync(opts.tlsCert);
        key = fs.readFileSync(opts.tlsKey);
      } catch (err) {
        kit.usage(`cannot read TLS files: ${err.message}`);
      }
      try {
        server = https.createServer({ cert, key }, onRequest);
      } catch (err) {
        kit.usage(`bad TLS certificate or key: ${err.message}`);
      }
    } else {
      server = http.createServer(onRequest);
    }
    server.on('clientError', (err, socket) => {
      const code = String(err.code || '');
      const tlsFailure = code.startsWith('ERR_SSL') || code === 'ECONNRESET';
      kit.log(`client error: ${kit.printable(code || 'unknown')} ${kit.printable(err.message).slice(0, 160)}`);
      if (!tlsFailure && socket.writable && !socket.destroyed) {
        socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      } else {
        socket.destroy();
      }
    });
    server.on('error', (err) => {
      kit.complain(err.message);
      process.exit(1);
    });
    return server;
  };

  // Listens on 127.0.0.1 only. Once bound: ready(port) gives what ready.json holds, which
  // is written atomically (a temp file, then rename: a test never reads half a file), and
  // one line `listening on URL ` + banner() is logged. Cannot write it: exit 1.
  kit.listen = (server, opts, ready, banner) => {
    server.listen(opts.port, '127.0.0.1', () => {
      const port = server.address().port;
      try {
        fs.mkdirSync(opts.stateDir, { recursive: true });
        const file = path.join(opts.stateDir, 'ready.json');
        const tmp = path.join(opts.stateDir, `.ready.json.${process.pid}.tmp`);
        fs.writeFileSync(tmp, JSON.stringify(ready(port)) + '\n');
        fs.renameSync(tmp, file);
      } catch (err) {
        kit.complain(`cannot write ready.json in ${opts.stateDir}: ${err.message}`);
        process.exit(1);
      }
      kit.log(`listening on ${opts.tlsCert ? 'https' : 'http'}://127.0.0.1:${port} ${banner()}`);
    });
  };

  // SIGTERM and SIGINT exit 0; an uncaught exception is logged and the fake keeps serving
  // (a test's fake should not die on one bad connection).
  kit.handleProcessEvents = () => {
    for (const sig of ['SIGTERM', 'SIGINT']) {
      process.on(sig, () => {
        kit.log(`${sig}, exiting`);
        process.exit(0);
      });
    }
    process.on('uncaughtException', (err) => {
      kit.complain(`uncaught exception: ${err && err.stack ? err.stack : err}`);
    });
  };

  // A test that crashed cannot stop its fake: the fake notices it was orphaned (its parent
  // changed) and exits 0.
  kit.exitWithParent = () => {
    const parent = process.ppid;
    setInterval(() => {
      if (process.ppid !== parent) process.exit(0);
    }, 250).unref();
  };

  kit.send = send;
  kit.sendJson = sendJson;
  kit.readBody = readBody;
  return kit;
}

module.exports = { forFake, printable, send, sendJson, readBody };
