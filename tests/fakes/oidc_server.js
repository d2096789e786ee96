#!/usr/bin/env node
// A fake OpenID Connect identity provider for portcullis' integration tests.
//
//   node tests/fakes/oidc_server.js --port 0 --state-dir DIR
//        [--tls-cert CERT.pem --tls-key KEY.pem] [--issuer URL] [--max-age SECONDS]
//
// Listens on 127.0.0.1 only. Once listening it writes DIR/ready.json (atomically, via a
// temp file and rename) as one line: {"port":N,"issuer":"..."}.
//
// Public endpoints (what portcullis talks to):
//   GET /.well-known/openid-configuration   discovery document
//   GET /jwks                               the current public keys
// Both also answer under the issuer's path (ISSUER_PATH/.well-known/..., ISSUER_PATH/jwks)
// when --issuer has one, carry Cache-Control: max-age=N, and obey the failure mode.
//
// Control endpoints (for the test only; they work whatever the mode) are described in
// tests/fakes/README.md: /control/rotate, /control/token, /control/mode, /control/stats,
// /control/reset-stats, /control/max-age, /control/state.
//
// Only Node's built-in modules are used; the server plumbing is lib/server_kit.js. Keys live
// in memory and are gone on exit.
'use strict';

const crypto = require('crypto');
const serverKit = require('./lib/server_kit');

const MAX_BODY = 64 * 1024;          // control request bodies
const MAX_MAX_AGE = 365 * 24 * 3600; // seconds
const DEFAULT_SLOW_MS = 5000;
const MAX_SLOW_MS = 120000;
const MODES = ['ok', 'down', 'garbage', 'slow', '500'];

// ---- command line -------------------------------------------------------------------------

const kit = serverKit.forFake('oidc_server', {
  usage: 'usage: node oidc_server.js --port N --state-dir DIR [--tls-cert CERT --tls-key KEY]\n' +
    '                           [--issuer URL] [--max-age SECONDS]\n' +
    '  --port 0 picks a free port; --issuer may contain {port}, replaced by the bound port.\n',
  printableLimit: 300,
});
const { usage, printable, send } = kit;

function parseArgs(argv) {
  const opts = kit.parseArgs(argv, {
    options: { '--issuer': 'issuer', '--max-age': 'maxAge' },
    defaults: { issuer: null, maxAge: 300 },
  });
  const maxAge = parseSeconds(opts.maxAge);
  if (maxAge === null) usage(`bad --max-age '${opts.maxAge}'`);
  opts.maxAge = maxAge;
  if (opts.issuer !== null && opts.issuer === '') usage('--issuer is empty');
  return opts;
}

function parseSeconds(v) {
  if (typeof v === 'number') {
    return Number.isInteger(v) && v >= 0 && v <= MAX_MAX_AGE ? v : null;
  }
  if (typeof v === 'string' && /^\d{1,9}$/.test(v) && Number(v) <= MAX_MAX_AGE) return Number(v);
  return null;
}

// ---- keys and JWS -------------------------------------------------------------------------

function b64url(buf) {
  return Buffer.from(buf).toString('base64')
    .replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
}

let keySeq = 0;
function newKey(alg) {
  keySeq += 1;
  const suffix = crypto.randomBytes(3).toString('hex');
  let pair;
  let kid;
  if (alg === 'RS256') {
    pair = crypto.generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 0x10001 });
    kid = `rsa-${keySeq}-${suffix}`;
  } else if (alg === 'ES256') {
    pair = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    kid = `ec-${keySeq}-${suffix}`;
  } else {
    throw new Error(`unsupported alg ${alg}`);
  }
  const jwk = pair.publicKey.export({ format: 'jwk' });
  return {
    kid, alg, privateKey: pair.privateKey,
    jwk: Object.assign({ kid, kty: jwk.kty, alg, use: 'sig' }, jwk),
  };
}

function signJws(header, payload, key) {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const data = Buffer.from(input, 'ascii');
  let sig;
  if (header.alg === 'none') {
    return `${input}.`;
  } else if (header.alg === 'RS256') {
    sig = crypto.sign('sha256', data, { key: key.privateKey, padding: crypto.constants.RSA_PKCS1_PADDING });
  } else if (header.alg === 'ES256') {
    sig = crypto.sign('sha256', data, { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
  } else {
    throw new Error(`cannot sign ${header.alg}`);
  }
  return `${input}.${b64url(sig)}`;
}

// ---- state --------------------------------------------------------------------------------

const opts = parseArgs(process.argv.slice(2));
const tls = !!opts.tlsCert;

const state = {
  mode: 'ok',
  slowMs: DEFAULT_SLOW_MS,
  maxAge: opts.maxAge,
  published: [],        // keys in the JWKS, oldest first
  allKeys: new Map(),   // kid -> key, every key ever made (dropped ones too, for /control/token)
  current: {},          // alg -> signing key
  stats: { discovery_fetches: 0, jwks_fetches: 0, introspections: 0 },
  opaque: new Map(),    // opaque token -> its introspection answer (RFC 7662)
  issuer: null,
  issuerPath: '',
};

function addKey(alg) {
  const key = newKey(alg);
  state.published.push(key);
  state.allKeys.set(key.kid, key);
  state.current[alg] = key;
  return key;
}

addKey('RS256');
addKey('ES256');

// ---- HTTP plumbing ------------------------------------------------------------------------

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// Answers of the control API are never cached; the public ones set their own max-age.
function sendJson(res, status, obj, headers = {}) {
  kit.sendJson(res, status, obj, Object.assign({ 'Cache-Control': 'no-store' }, headers));
}

function sendError(res, status, message) {
  const extra = status === 413 ? { Connection: 'close' } : {};
  sendJson(res, status, { error: message }, extra);
}

// Reads at most MAX_BODY bytes; rejects with HttpError(413) beyond that.
function readBody(req) {
  return kit.readBody(req, MAX_BODY, {
    checkDeclared: true,
    tooLarge: () => new HttpError(413, `body larger than ${MAX_BODY} bytes`),
    failed: (err) => new HttpError(400, `reading body: ${err.message}`),
    aborted: () => new HttpError(400, 'request aborted'),
  });
}

// A JSON object body; an empty body counts as {} when allowEmpty.
async function readJsonObject(req, allowEmpty) {
  const buf = await readBody(req);
  const text = buf.toString('utf8').trim();
  if (text === '') {
    if (allowEmpty) return {};
    throw new HttpError(400, 'a JSON object body is required');
  }
  let value;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, `body is not valid JSON: ${err.message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new HttpError(400, 'body must be a JSON object');
  }
  return value;
}

function requireMethod(req, ...methods) {
  if (!methods.includes(req.method)) {
    throw new HttpError(405, `method ${req.method} not allowed; use ${methods.join(' or ')}`);
  }
}

// ---- public endpoints ---------------------------------------------------------------------

function baseUrl() {
  return state.issuer.replace(/\/+$/, '');
}

function discoveryDoc() {
  const base = baseUrl();
  return {
    issuer: state.issuer,
    authorization_endpoint: `${base}/authorize`,
    token_endpoint: `${base}/token`,
    jwks_uri: `${base}/jwks`,
    response_types_supported: ['code', 'id_token'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: ['RS256', 'ES256'],
  };
}

function jwksDoc() {
  return { keys: state.published.map((k) => k.jwk) };
}

// Applies the failure mode, then answers with makeBody() (called when answering, so a
// slow answer shows the keys as they are after the delay).
function servePublic(req, res, makeBody, methods = ['GET', 'HEAD']) {
  requireMethod(req, ...methods);
  const mode = state.mode;
  res.locals.mode = mode;
  if (mode === 'down') {
    res.locals.reset = true;
    // A TCP RST (SO_LINGER 0), not a FIN: the client sees "connection reset by peer".
    // Over TLS the TCP socket is the TLS socket's (internal) _parent; if that is not there,
    // a plain destroy still kills the connection (the client sees an empty reply).
    const sock = req.socket;
    const tcp = tls ? sock._parent : sock;
    try {
      if (tcp && typeof tcp.resetAndDestroy === 'function') tcp.resetAndDestroy();
    } catch (_) {
      // fall through to destroy()
    }
    sock.destroy();
    return;
  }
  if (mode === 'garbage') {
    // Not JSON whatever a parser tries: a NUL, invalid UTF-8, half an object, some HTML.
    send(res, 200, Buffer.concat([
      Buffer.from('\x00'), Buffer.from([0xff, 0xfe, 0xc3, 0x28]),
      Buffer.from('{"keys": [ <html>this is not JSON</html> ,,,\n'),
    ]), { 'Content-Type': 'application/json', 'Cache-Control': `max-age=${state.maxAge}` });
    return;
  }
  if (mode === '500') {
    sendJson(res, 500, { error: 'internal_error', error_description: 'fake IdP is in mode 500' });
    return;
  }
  const answer = () => sendJson(res, 200, makeBody(), { 'Cache-Control': `max-age=${state.maxAge}` });
  if (mode === 'slow') {
    const timer = setTimeout(answer, state.slowMs);
    res.on('close', () => clearTimeout(timer));
    return;
  }
  answer();
}

// ---- control endpoints --------------------------------------------------------------------

async function controlRotate(req, res, query) {
  requireMethod(req, 'POST');
  await readBody(req); // ignored, but read (bounded) so keep-alive stays sane
  const algParam = query.get('alg') || 'RS256';
  if (algParam !== 'RS256' && algParam !== 'ES256') throw new HttpError(400, 'alg must be RS256 or ES256');
  const dropParam = query.get('drop_old');
  const drop = dropParam !== null && !['0', 'false', 'no', ''].includes(dropParam);
  const key = addKey(algParam);
  let dropped = [];
  if (drop) {
    dropped = state.published.filter((k) => k !== key).map((k) => k.kid);
    state.published = [key];
    state.current = { [key.alg]: key };
  }
  sendJson(res, 200, {
    kid: key.kid, alg: key.alg, dropped, kids: state.published.map((k) => k.kid),
  });
}

async function controlToken(req, res) {
  requireMethod(req, 'POST');
  const body = await readJsonObject(req, true);
  const claims = { ...body }; // spread, not Object.assign: a "__proto__" claim stays a claim
  const alg = claims.alg;
  const kid = claims.kid;
  delete claims.alg;
  delete claims.kid;
  if (alg !== undefined && !['RS256', 'ES256', 'none'].includes(alg)) {
    throw new HttpError(400, 'alg must be "RS256", "ES256" or "none"');
  }
  if (kid !== undefined && typeof kid !== 'string') throw new HttpError(400, 'kid must be a string');

  let key = null;
  let headerAlg = alg || 'RS256';
  if (alg === 'none') {
    key = null;
  } else if (kid !== undefined) {
    key = state.allKeys.get(kid) || null;
    if (!key) throw new HttpError(400, `no key with kid '${printable(kid)}'`);
    if (alg !== undefined && alg !== key.alg) {
      throw new HttpError(400, `key '${printable(kid)}' is ${key.alg}, not ${alg}`);
    }
    headerAlg = key.alg;
  } else {
    key = state.current[headerAlg] || null;
    if (!key) {
      throw new HttpError(409, `no current ${headerAlg} key (dropped by rotate?drop_old=1); ` +
        `POST /control/rotate?alg=${headerAlg} makes one`);
    }
  }

  const now = Math.floor(Date.now() / 1000);
  const defaults = { iss: state.issuer, iat: now, exp: now + 3600 };
  for (const [name, value] of Object.entries(defaults)) {
    if (!Object.prototype.hasOwnProperty.call(claims, name)) claims[name] = value;
    else if (claims[name] === null) delete claims[name]; // null = leave the claim out
  }

  const header = { alg: headerAlg, typ: 'JWT' };
  if (key) header.kid = key.kid;
  else if (kid !== undefined) header.kid = kid;
  const token = signJws(header, claims, key);
  sendJson(res, 200, { token, kid: header.kid === undefined ? null : header.kid, alg: headerAlg });
}

async function controlMode(req, res) {
  requireMethod(req, 'POST');
  const body = await readJsonObject(req, false);
  if (typeof body.mode !== 'string' || !MODES.includes(body.mode)) {
    throw new HttpError(400, `mode must be one of ${MODES.join(', ')}`);
  }
  let slowMs = DEFAULT_SLOW_MS;
  if (body.delay_ms !== undefined) {
    if (!Number.isInteger(body.delay_ms) || body.delay_ms < 0 || body.delay_ms > MAX_SLOW_MS) {
      throw new HttpError(400, `delay_ms must be an integer in 0..${MAX_SLOW_MS}`);
    }
    slowMs = body.delay_ms;
  }
  state.mode = body.mode;
  state.slowMs = slowMs;
  sendJson(res, 200, { mode: state.mode, delay_ms: state.slowMs });
}

async function controlMaxAge(req, res) {
  requireMethod(req, 'POST');
  const body = await readJsonObject(req, false);
  const seconds = parseSeconds(body.seconds);
  if (seconds === null) throw new HttpError(400, `seconds must be an integer in 0..${MAX_MAX_AGE}`);
  state.maxAge = seconds;
  sendJson(res, 200, { max_age: state.maxAge });
}

async function controlStats(req, res) {
  requireMethod(req, 'GET', 'HEAD');
  sendJson(res, 200, state.stats);
}

async function controlResetStats(req, res) {
  requireMethod(req, 'POST');
  await readBody(req);
  state.stats.discovery_fetches = 0;
  state.stats.jwks_fetches = 0;
  state.stats.introspections = 0;
  sendJson(res, 200, state.stats);
}

async function controlState(req, res) {
  requireMethod(req, 'GET', 'HEAD');
  sendJson(res, 200, {
    issuer: state.issuer,
    mode: state.mode,
    delay_ms: state.slowMs,
    max_age: state.maxAge,
    kids: state.published.map((k) => k.kid),
    signing: Object.fromEntries(Object.entries(state.current).map(([alg, k]) => [alg, k.kid])),
    stats: state.stats,
  });
}

// POST /control/opaque {"token": "...", "answer": {...}}: what /introspect says of a token.
async function controlOpaque(req, res) {
  requireMethod(req, 'POST');
  const body = await readJsonObject(req, false);
  if (typeof body.token !== 'string' || body.token === '') throw new HttpError(400, 'token must be a string');
  if (body.answer === null || typeof body.answer !== 'object' || Array.isArray(body.answer)) {
    throw new HttpError(400, 'answer must be a JSON object');
  }
  state.opaque.set(body.token, body.answer);
  sendJson(res, 200, { tokens: state.opaque.size });
}

// RFC 7662 §2: POST token=…, HTTP Basic client portcullis:s3cret. Unknown tokens are
// inactive. Follows the mode like the public endpoints.
async function introspect(req, res) {
  requireMethod(req, 'POST');
  const body = (await readBody(req)).toString('utf8');
  const expected = 'Basic ' + Buffer.from('portcullis:s3cret').toString('base64');
  if (req.headers.authorization !== expected) {
    sendJson(res, 401, { error: 'invalid_client' }, { 'WWW-Authenticate': 'Basic realm="fake"' });
    return;
  }
  const form = new URLSearchParams(body);
  const token = form.get('token');
  if (!token) throw new HttpError(400, 'token is required');
  const answer = state.opaque.get(token) || { active: false };
  servePublic(req, res, () => answer, ['POST']);
}

const CONTROL = {
  '/control/opaque': controlOpaque,
  '/control/rotate': controlRotate,
  '/control/token': controlToken,
  '/control/mode': controlMode,
  '/control/max-age': controlMaxAge,
  '/control/stats': controlStats,
  '/control/reset-stats': controlResetStats,
  '/control/state': controlState,
};

// ---- dispatch -----------------------------------------------------------------------------

function isPath(pathname, suffix) {
  return pathname === suffix || (state.issuerPath !== '' && pathname === state.issuerPath + suffix);
}

async function route(req, res) {
  let url;
  try {
    url = new URL(req.url, 'http://127.0.0.1');
  } catch (_) {
    throw new HttpError(400, 'bad request target');
  }
  const pathname = url.pathname;
  if (Object.prototype.hasOwnProperty.call(CONTROL, pathname)) {
    await CONTROL[pathname](req, res, url.searchParams);
    return;
  }
  if (isPath(pathname, '/.well-known/openid-configuration')) {
    state.stats.discovery_fetches += 1;
    servePublic(req, res, discoveryDoc);
    return;
  }
  if (isPath(pathname, '/introspect')) {
    state.stats.introspections += 1;
    await introspect(req, res);
    return;
  }
  if (isPath(pathname, '/jwks')) {
    state.stats.jwks_fetches += 1;
    servePublic(req, res, jwksDoc);
    return;
  }
  throw new HttpError(404, `no such endpoint ${printable(pathname)}`);
}

function onRequest(req, res) {
  const t0 = process.hrtime.bigint();
  res.locals = {};
  res.on('close', () => {
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const status = res.locals.reset ? 'RESET' : (res.headersSent ? res.statusCode : 'ABORTED');
    const mode = res.locals.mode ? ` mode=${res.locals.mode}` : '';
    kit.log(`${printable(req.method)} ${printable(req.url)} ${status} ${ms.toFixed(1)}ms${mode}`);
  });
  Promise.resolve()
    .then(() => route(req, res))
    .catch((err) => {
      if (err instanceof HttpError) {
        sendError(res, err.status, err.message);
        if (err.status === 413) {
          // Stop reading the oversized body.
          res.on('finish', () => req.socket.destroy());
        }
      } else {
        kit.complain(`internal error: ${err && err.stack ? err.stack : err}`);
        sendError(res, 500, 'internal error in the fake IdP');
      }
    });
}

// ---- start -------------------------------------------------------------------------------

const server = kit.createServer(opts, onRequest);

kit.listen(server, opts, (port) => {
  const scheme = tls ? 'https' : 'http';
  state.issuer = opts.issuer !== null
    ? opts.issuer.split('{port}').join(String(port))
    : `${scheme}://127.0.0.1:${port}`;
  try {
    state.issuerPath = new URL(state.issuer).pathname.replace(/\/+$/, '');
  } catch (_) {
    state.issuerPath = '';
  }
  return { port, issuer: state.issuer };
}, () => `issuer ${state.issuer} kids ${state.published.map((k) => k.kid).join(',')}`);

kit.handleProcessEvents();
