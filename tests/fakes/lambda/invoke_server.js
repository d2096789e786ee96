#!/usr/bin/env node
// A fake AWS Lambda Invoke API for portcullis' `runtime: lambda` tests.
//
//   node tests/fakes/lambda/invoke_server.js --port 0 --state-dir DIR
//        [--tls-cert CERT.pem --tls-key KEY.pem] [--region us-east-1]
//        [--account 123456789012] [--credentials ID:SECRET[:SESSION_TOKEN]]...
//        [--keep-alive-timeout MS] [--exit-with-parent]
//   node tests/fakes/lambda/invoke_server.js --self-test tests/unit/aws/data/sigv4
//
// Listens on 127.0.0.1 only. Once listening it writes DIR/ready.json (atomically, via a
// temp file and rename) as one line: {"port":N,"endpoint":"http://127.0.0.1:N","region":"…"}.
//
// It checks every request's AWS Signature Version 4 itself (canonical request, string to
// sign, signing key and HMAC written here from AWS's documentation, sharing no code with
// portcullis), the X-Amz-Date skew (±5 minutes) and the credential scope (date, region,
// service `lambda`), answering 403 as AWS does when one is wrong. Then it plays Lambda:
// POST /2015-03-31/functions/{function}/invocations runs a built-in function picked by name
// (allow, deny, policy, echo, sleep, error, throttle, broken, garbage, big, invalid, index).
// tests/fakes/README.md has the table, and the control endpoints (/control/stats, …).
//
// Only Node's built-in modules are used; the server plumbing is ../lib/server_kit.js.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const serverKit = require('../lib/server_kit');

const MAX_PAYLOAD = 6 * 1024 * 1024;  // Lambda's RequestResponse payload limit
const MAX_CONTROL_BODY = 64 * 1024;
const SKEW_MS = 5 * 60 * 1000;
const DEFAULT_KEY_ID = 'AKIDEXAMPLE';
const DEFAULT_SECRET = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';
const INVOKE_PATH = /^\/2015-03-31\/functions\/([^/]+)\/invocations$/;

// ---- command line -------------------------------------------------------------------------

const kit = serverKit.forFake('invoke_server', {
  usage: 'usage: node invoke_server.js --port N --state-dir DIR [--tls-cert CERT --tls-key KEY]\n' +
    '         [--region R] [--account ID] [--credentials ID:SECRET[:TOKEN]]...\n' +
    '         [--keep-alive-timeout MS] [--exit-with-parent]\n',
});
const { usage, printable, send, sendJson } = kit;

function parseArgs(argv) {
  const opts = kit.parseArgs(argv, {
    options: {
      '--region': 'region', '--account': 'account', '--credentials': 'credentials',
      '--keep-alive-timeout': 'keepAliveTimeout',
    },
    flags: { '--exit-with-parent': 'exitWithParent' },
    lists: ['credentials'],
    defaults: {
      region: 'us-east-1', account: '123456789012', credentials: [], keepAliveTimeout: '65000',
      exitWithParent: false,
    },
  });
  if (!/^[a-z0-9-]{1,32}$/.test(opts.region)) usage(`bad --region '${opts.region}'`);
  if (!/^\d{12}$/.test(opts.account)) usage(`bad --account '${opts.account}'`);
  if (!/^\d{1,7}$/.test(opts.keepAliveTimeout)) usage(`bad --keep-alive-timeout '${opts.keepAliveTimeout}'`);
  opts.keepAliveTimeout = Number(opts.keepAliveTimeout);
  const keys = new Map();
  if (opts.credentials.length === 0) opts.credentials.push(`${DEFAULT_KEY_ID}:${DEFAULT_SECRET}`);
  for (const c of opts.credentials) {
    const parts = c.split(':');
    if (parts.length < 2 || parts.length > 3 || !parts[0] || !parts[1]) {
      usage('--credentials is ID:SECRET or ID:SECRET:SESSION_TOKEN');
    }
    keys.set(parts[0], { secret: parts[1], token: parts[2] || null });
  }
  opts.keys = keys;
  return opts;
}

const isMain = require.main === module;
const opts = isMain && !process.argv.includes('--self-test')
  ? parseArgs(process.argv.slice(2))
  : {
    keys: new Map([[DEFAULT_KEY_ID, { secret: DEFAULT_SECRET, token: null }]]),
    region: 'us-east-1', account: '123456789012', keepAliveTimeout: 65000,
  };
const tls = !!opts.tlsCert;

// ---- SigV4, from https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html

// URI-encode bytes: everything but A-Z a-z 0-9 - . _ ~ becomes %XY (upper-case hex).
function uriEncodeBytes(buf) {
  let out = '';
  for (const b of buf) {
    const unreserved = (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) ||
      (b >= 0x30 && b <= 0x39) || b === 0x2d || b === 0x2e || b === 0x5f || b === 0x7e;
    out += unreserved ? String.fromCharCode(b) : '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

// %XY escapes decoded to bytes; anything else kept as its UTF-8 bytes.
function percentDecode(s) {
  const bytes = [];
  const raw = Buffer.from(s, 'utf8');
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0x25 && i + 2 < raw.length) {
      const hex = raw.slice(i + 1, i + 3).toString('latin1');
      if (/^[0-9a-fA-F]{2}$/.test(hex)) {
        bytes.push(parseInt(hex, 16));
        i += 2;
        continue;
      }
    }
    bytes.push(raw[i]);
  }
  return Buffer.from(bytes);
}

// The path as received, normalised (RFC 3986 dot segments, empty segments dropped) and each
// segment encoded once more: every service but S3 signs the double-encoded path.
function canonicalUri(rawPath) {
  const kept = [];
  const segments = rawPath.split('/').slice(1);
  for (const seg of segments) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      kept.pop();
      continue;
    }
    kept.push(seg);
  }
  let uri = '/' + kept.map((seg) => uriEncodeBytes(Buffer.from(seg, 'utf8'))).join('/');
  const last = segments[segments.length - 1];
  if (kept.length > 0 && (last === '' || last === '.' || last === '..')) uri += '/';
  return uri;
}

// Parameters decoded, encoded again, sorted by name then value.
function canonicalQuery(query) {
  if (!query) return '';
  const params = query.split('&').filter((p) => p.length > 0).map((p) => {
    const eq = p.indexOf('=');
    const name = eq < 0 ? p : p.slice(0, eq);
    const value = eq < 0 ? '' : p.slice(eq + 1);
    return [uriEncodeBytes(percentDecode(name)), uriEncodeBytes(percentDecode(value))];
  });
  params.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return params.map(([n, v]) => `${n}=${v}`).join('&');
}

// Values of each signed header as received (rawHeaders keeps repeats), trimmed, inner runs
// of blanks reduced to one space, repeats joined with ','. Null when one is missing.
function canonicalHeaders(rawHeaders, signedNames) {
  const values = new Map();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    if (!values.has(name)) values.set(name, []);
    values.get(name).push(rawHeaders[i + 1].trim().replace(/[ \t]+/g, ' '));
  }
  let out = '';
  for (const name of signedNames) {
    if (!values.has(name)) return null;
    out += `${name}:${values.get(name).join(',')}\n`;
  }
  return out;
}

const sha256Hex = (data) => crypto.createHash('sha256').update(data).digest('hex');
const hmac = (key, data) => crypto.createHmac('sha256', key).update(data, 'utf8').digest();

function signingKey(secret, date, region, service) {
  const kDate = hmac(Buffer.from('AWS4' + secret, 'utf8'), date);
  const kRegion = hmac(kDate, region);
  const kService = hmac(kRegion, service);
  return hmac(kService, 'aws4_request');
}

function amzDateToMs(d) {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(d);
  if (!m) return null;
  return Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
}

function msToAmzDate(ms) {
  return new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

// The canonical request, the string to sign and the signature (raw bytes) of a request as
// received; null when a signed header is missing from it.
function signatureFor(r) {
  const headersText = canonicalHeaders(r.rawHeaders, r.signedHeadersText.split(';'));
  if (headersText === null) return null;
  const canonical = [
    r.method, canonicalUri(r.rawPath), canonicalQuery(r.rawQuery), headersText, r.signedHeadersText,
    sha256Hex(r.body),
  ].join('\n');
  const stringToSign = ['AWS4-HMAC-SHA256', r.amzDate,
    `${r.scopeDate}/${r.region}/${r.service}/aws4_request`, sha256Hex(canonical)].join('\n');
  const signature = crypto.createHmac('sha256', signingKey(r.secret, r.scopeDate, r.region, r.service))
    .update(stringToSign, 'utf8').digest();
  return { canonical, stringToSign, signature };
}

class AwsError extends Error {
  constructor(status, type, message, extra = {}) {
    super(message);
    this.status = status;
    this.type = type;
    this.extra = extra;
  }
}

const SIGNATURE_MISMATCH = 'The request signature we calculated does not match the signature ' +
  'you provided. Check your AWS Secret Access Key and signing method. Consult the service ' +
  'documentation for details.';

// Throws AwsError when the request is not signed right; returns what it learned.
function verifySignature(req, rawPath, rawQuery, body) {
  const auth = req.headers.authorization;
  if (!auth) throw new AwsError(403, 'MissingAuthenticationTokenException', 'Missing Authentication Token');
  const m = /^AWS4-HMAC-SHA256 Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})$/.exec(auth);
  if (!m) {
    throw new AwsError(403, 'IncompleteSignatureException',
      'Authorization header requires Credential, SignedHeaders and Signature (AWS4-HMAC-SHA256).');
  }
  const [, credential, signedHeadersText, signatureHex] = m;
  const scope = credential.split('/');
  if (scope.length !== 5 || scope[4] !== 'aws4_request') {
    throw new AwsError(403, 'IncompleteSignatureException', 'Credential must have 5 parts ending in aws4_request.');
  }
  const [keyId, scopeDate, scopeRegion, scopeService] = scope;
  const key = opts.keys.get(keyId);
  if (!key) throw new AwsError(403, 'UnrecognizedClientException', 'The security token included in the request is invalid.');
  const token = req.headers['x-amz-security-token'];
  if ((key.token || token) && key.token !== token) {
    throw new AwsError(403, 'UnrecognizedClientException', 'The security token included in the request is invalid.');
  }
  const amzDate = req.headers['x-amz-date'];
  const dateMs = amzDate ? amzDateToMs(amzDate) : null;
  if (dateMs === null) {
    throw new AwsError(403, 'IncompleteSignatureException', 'X-Amz-Date must be a YYYYMMDDTHHMMSSZ date.');
  }
  if (scopeDate !== amzDate.slice(0, 8)) {
    throw new AwsError(403, 'InvalidSignatureException',
      `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${scopeDate}' != '${amzDate.slice(0, 8)}'`);
  }
  if (scopeRegion !== opts.region) {
    throw new AwsError(403, 'InvalidSignatureException', `Credential should be scoped to a valid region, not '${scopeRegion}'.`);
  }
  if (scopeService !== 'lambda') {
    throw new AwsError(403, 'InvalidSignatureException', "Credential should be scoped to correct service: 'lambda'.");
  }
  const signedNames = signedHeadersText.split(';');
  const sorted = [...signedNames].sort();
  if (signedNames.some((n) => n !== n.toLowerCase()) || signedNames.join(';') !== sorted.join(';')) {
    throw new AwsError(403, 'IncompleteSignatureException', 'SignedHeaders must be lower case and sorted.');
  }
  for (const needed of ['host', 'x-amz-date'].concat(token ? ['x-amz-security-token'] : [])) {
    if (!signedNames.includes(needed)) {
      throw new AwsError(403, 'IncompleteSignatureException', `'${needed}' must be a 'SignedHeader' in the AWS Authorization.`);
    }
  }
  const computed = signatureFor({
    method: req.method, rawPath, rawQuery, rawHeaders: req.rawHeaders, signedHeadersText, body,
    secret: key.secret, amzDate, scopeDate, region: scopeRegion, service: scopeService,
  });
  const given = Buffer.from(signatureHex, 'hex');
  if (!computed || given.length !== computed.signature.length ||
      !crypto.timingSafeEqual(given, computed.signature)) {
    throw new AwsError(403, 'InvalidSignatureException', SIGNATURE_MISMATCH);
  }
  const now = Date.now();
  if (dateMs < now - SKEW_MS) {
    throw new AwsError(403, 'InvalidSignatureException',
      `Signature expired: ${amzDate} is now earlier than ${msToAmzDate(now - SKEW_MS)} (${msToAmzDate(now)} - 5 min.)`);
  }
  if (dateMs > now + SKEW_MS) {
    throw new AwsError(403, 'InvalidSignatureException',
      `Signature not yet current: ${amzDate} is still later than ${msToAmzDate(now + SKEW_MS)} (${msToAmzDate(now)} + 5 min.)`);
  }
  return { keyId, signedHeaders: signedHeadersText, amzDate, token: token || null };
}

// ---- function references ----------------------------------------------------------------

// name | name:qualifier | ACCOUNT:function:name[:q] | arn:aws:lambda:REGION:ACCOUNT:function:name[:q]
function parseFunctionRef(text) {
  const parts = text.split(':');
  let rest;
  let region = null;
  if (parts[0] === 'arn') {
    if (parts.length < 7 || !parts[1].startsWith('aws') || parts[2] !== 'lambda' || parts[5] !== 'function') return null;
    region = parts[3];
    rest = parts.slice(6);
  } else if (parts.length >= 3 && parts[1] === 'function') {
    if (!/^\d{12}$/.test(parts[0])) return null;
    rest = parts.slice(2);
  } else {
    rest = parts;
  }
  if (rest.length < 1 || rest.length > 2 || !/^[A-Za-z0-9_-]{1,64}$/.test(rest[0])) return null;
  if (rest.length === 2 && !/^(\$LATEST|[A-Za-z0-9_-]{1,128})$/.test(rest[1])) return null;
  return { name: rest[0], qualifier: rest[1] || null, region };
}

// ---- state --------------------------------------------------------------------------------

function freshStats() {
  return {
    requests: 0,          // HTTP requests to the invoke path, whatever became of them
    invocations: 0,       // signed right and handed to a function
    by_function: {},
    rejected: 0,          // refused for their signature, credentials or date
    connections: 0,       // TCP connections accepted (control requests' included)
    invoke_connections: 0, // connections that carried at least one invoke request
    tls_connections: 0,   // TLS handshakes completed
    in_flight: 0,
    max_in_flight: 0,
    dropped: 0,           // requests whose connection /control/drop closed unanswered
    aborted: 0,           // invocations whose client went away before the answer
  };
}

const state = {
  stats: freshStats(),
  open: 0,                // connections open now
  dropNext: 0,
  last: null,             // what the last signed invocation looked like
  servernames: [],        // SNI names seen on TLS connections, most recent last (max 20)
  indexHandler: null,
};

function loadIndexHandler() {
  if (!state.indexHandler) {
    state.indexHandler = require(path.join(__dirname, 'handlers', 'index.js')).handler;
  }
  return state.indexHandler;
}

// ---- HTTP plumbing ------------------------------------------------------------------------

// AWS's error shape: x-amzn-ErrorType (with the service URL AWS appends) and {"message"}.
function sendAwsError(res, err, requestId) {
  return sendJson(res, err.status, Object.assign({ message: err.message }, err.extra.body || {}),
    Object.assign({
      'x-amzn-RequestId': requestId,
      'x-amzn-ErrorType': `${err.type}:http://internal.amazon.com/coral/com.amazon.coral.service/`,
    }, err.extra.headers || {}));
}

// Stream errors reach onRequest as they are (logged as `error MESSAGE`, answered 500).
function readBody(req, limit) {
  return kit.readBody(req, limit, {
    tooLarge: () => new AwsError(413, 'RequestTooLargeException', `Request must be smaller than ${limit} bytes for the InvokeFunction operation`),
    failed: (err) => err,
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- the functions ------------------------------------------------------------------------

// Runs function `ref.name` on `event`. Returns {status, body, headers} as Lambda would answer.
async function runFunction(ref, qualifier, event, requestId, isGone) {
  const h = (event && event.headers) || {};
  const functionArn = `arn:aws:lambda:${opts.region}:${opts.account}:function:${ref.name}`;
  const ok = (payload) => ({ status: 200, body: JSON.stringify(payload) });
  const functionError = (type, message) => ({
    status: 200,
    body: JSON.stringify({ errorType: type, errorMessage: message, trace: [] }),
    headers: { 'X-Amz-Function-Error': 'Unhandled' },
  });
  switch (ref.name) {
    case 'allow':
      return ok({ isAuthorized: true, context: { tenant: h['x-tenant'] || 'acme', function: ref.name, request_id: requestId } });
    case 'deny':
      return ok({ isAuthorized: false, context: { why: 'told to' } });
    case 'policy': {
      const api = String(event.routeArn || '').split('/').slice(0, 2).join('/');
      return ok({
        principalId: 'policy-user',
        policyDocument: {
          Version: '2012-10-17',
          Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: `${api}/GET/orders/*` }],
        },
        context: { tenant: 'policy' },
      });
    }
    case 'echo':
      return ok({
        isAuthorized: true,
        context: {
          name: ref.name,
          qualifier: qualifier || '',
          version: String(event.version || ''),
          type: String(event.type || ''),
          route_arn: String(event.routeArn || ''),
          identity: (event.identitySource || []).join(','),
          path: String(event.rawPath || ''),
          method: String(((event.requestContext || {}).http || {}).method || ''),
          tenant: h['x-tenant'] || '',
        },
      });
    case 'sleep': {
      const ms = Math.min(Number(h['x-sleep-ms'] || 60000), 120000);
      const until = Date.now() + ms;
      while (Date.now() < until && !isGone()) await sleep(Math.min(20, until - Date.now()));
      return ok({ isAuthorized: true, context: { slept: String(ms) } });
    }
    case 'error':
      return functionError('Error', 'told to fail');
    case 'throttle':
      throw new AwsError(429, 'TooManyRequestsException', 'Rate Exceeded.', {
        body: { Reason: 'ReservedFunctionConcurrentInvocationLimitExceeded', Type: 'User' },
        headers: { 'Retry-After': '1' },
      });
    case 'broken':
      throw new AwsError(500, 'ServiceException', 'Lambda was unable to process the request.', { body: { Type: 'Service' } });
    case 'garbage':
      return { status: 200, body: '<html>this is not JSON' };
    case 'big':
      return ok({ isAuthorized: true, context: { pad: 'x'.repeat(7 * 1024 * 1024) } });
    case 'invalid':
      // Some AWS errors name their type only in the body's __type.
      return {
        status: 400,
        body: JSON.stringify({ __type: 'com.amazon.coral.validate#ValidationException', message: 'told to be invalid' }),
      };
    case 'index': {
      // tests/fakes/lambda/handlers/index.js (the lambda-local fake), X-Mode picks its mode.
      if (h['x-mode'] === 'exit') return functionError('Runtime.ExitError', 'RequestId: ' + requestId + ' Error: Runtime exited with error: exit status 3');
      const context = {
        awsRequestId: requestId,
        functionName: ref.name,
        functionVersion: qualifier || '$LATEST',
        invokedFunctionArn: qualifier ? `${functionArn}:${qualifier}` : functionArn,
        getRemainingTimeInMillis: () => 3000,
      };
      try {
        return ok(await loadIndexHandler()(event, context));
      } catch (err) {
        return functionError((err && err.name) || 'Error', (err && err.message) || String(err));
      }
    }
    default:
      throw new AwsError(404, 'ResourceNotFoundException', `Function not found: ${functionArn}`, { body: { Type: 'User' } });
  }
}

const invokeSockets = new WeakSet();

async function onInvoke(req, res, encodedName, rawPath, rawQuery, requestId) {
  state.stats.requests += 1;
  if (!invokeSockets.has(req.socket)) {
    invokeSockets.add(req.socket);
    state.stats.invoke_connections += 1;
  }
  if (state.dropNext > 0) {
    state.dropNext -= 1;
    state.stats.dropped += 1;
    req.socket.destroy();
    return 'DROPPED';
  }
  if (req.method !== 'POST') {
    throw new AwsError(405, 'MethodNotAllowedException', 'Only POST invokes a function.');
  }
  const body = await readBody(req, MAX_PAYLOAD);
  let signed;
  try {
    signed = verifySignature(req, rawPath, rawQuery, body);
  } catch (err) {
    if (err instanceof AwsError) state.stats.rejected += 1;
    throw err;
  }
  const ref = parseFunctionRef(percentDecode(encodedName).toString('utf8'));
  if (!ref) throw new AwsError(400, 'ValidationException', 'Invalid function name.');
  if (ref.region && ref.region !== opts.region) {
    throw new AwsError(400, 'ValidationException', 'The function ARN names another region.');
  }
  const invocationType = req.headers['x-amz-invocation-type'] || 'RequestResponse';
  if (invocationType !== 'RequestResponse') {
    throw new AwsError(400, 'InvalidParameterValueException', 'This fake plays RequestResponse only.');
  }
  const params = new URLSearchParams(rawQuery || '');
  const qualifierParam = params.get('Qualifier');
  if (qualifierParam !== null && ref.qualifier && qualifierParam !== ref.qualifier) {
    throw new AwsError(400, 'InvalidParameterValueException', 'The derived qualifier from the function name does not match the specified qualifier.');
  }
  const qualifier = qualifierParam || ref.qualifier;
  let event;
  try {
    event = JSON.parse(body.toString('utf8'));
  } catch (_) {
    throw new AwsError(400, 'InvalidRequestContentException', 'Could not parse request body into json');
  }

  const stats = state.stats;
  stats.invocations += 1;
  stats.by_function[ref.name] = (stats.by_function[ref.name] || 0) + 1;
  stats.in_flight += 1;
  stats.max_in_flight = Math.max(stats.max_in_flight, stats.in_flight);
  state.last = {
    function: ref.name,
    reference: percentDecode(encodedName).toString('utf8'),
    qualifier: qualifier || null,
    host: req.headers.host || null,
    content_type: req.headers['content-type'] || null,
    invocation_type: req.headers['x-amz-invocation-type'] || null,
    user_agent: req.headers['user-agent'] || null,
    access_key_id: signed.keyId,
    amz_date: signed.amzDate,
    signed_headers: signed.signedHeaders,
    security_token: signed.token,
    servername: req.socket.servername || null,
    body_bytes: body.length,
  };
  let gone = false;
  res.on('close', () => {
    if (!res.writableFinished) gone = true;
  });
  try {
    const out = await runFunction(ref, qualifier, event, requestId, () => gone);
    if (gone || res.destroyed) {
      stats.aborted += 1;
      return 'ABORTED';
    }
    const headers = Object.assign({
      'Content-Type': 'application/json',
      'x-amzn-RequestId': requestId,
      'X-Amz-Executed-Version': qualifier && /^\d+$/.test(qualifier) ? qualifier : '$LATEST',
    }, out.headers || {});
    send(res, out.status, out.body, headers);
    return `fn=${ref.name}`;
  } finally {
    stats.in_flight -= 1;
  }
}

// ---- control API --------------------------------------------------------------------------

async function onControl(req, res, name) {
  const json = async () => {
    const body = (await readBody(req, MAX_CONTROL_BODY)).toString('utf8');
    if (!body) return {};
    try {
      return JSON.parse(body);
    } catch (_) {
      throw new AwsError(400, 'BadRequest', 'control bodies are JSON');
    }
  };
  if (name === 'stats' && req.method === 'GET') {
    return sendJson(res, 200, Object.assign({ open_connections: state.open }, state.stats));
  }
  if (name === 'last' && req.method === 'GET') {
    return sendJson(res, 200, { last: state.last, servernames: state.servernames });
  }
  if (name === 'reset-stats' && req.method === 'POST') {
    const inFlight = state.stats.in_flight;
    state.stats = freshStats();
    state.stats.in_flight = inFlight;
    state.last = null;
    state.servernames = [];
    return sendJson(res, 200, { ok: true });
  }
  if (name === 'drop' && req.method === 'POST') {
    const body = await json();
    const count = body.count === undefined ? 1 : body.count;
    if (!Number.isInteger(count) || count < 0 || count > 1000) throw new AwsError(400, 'BadRequest', 'count: 0..1000');
    state.dropNext = count;
    return sendJson(res, 200, { ok: true, drop: count });
  }
  if (name === 'keep-alive' && req.method === 'POST') {
    const body = await json();
    if (!Number.isInteger(body.ms) || body.ms < 0 || body.ms > 3600000) throw new AwsError(400, 'BadRequest', 'ms: 0..3600000');
    server.keepAliveTimeout = body.ms;
    return sendJson(res, 200, { ok: true, keep_alive_timeout: body.ms });
  }
  if (name === 'close-idle' && req.method === 'POST') {
    // Kept-alive connections waiting for a request are closed now (as a server that timed
    // them out would); this request's own connection is busy, so it stays.
    server.closeIdleConnections();
    return sendJson(res, 200, { ok: true });
  }
  throw new AwsError(404, 'NotFound', `no control endpoint ${req.method} /control/${name}`);
}

// ---- server -------------------------------------------------------------------------------

async function onRequest(req, res) {
  const started = process.hrtime.bigint();
  const requestId = crypto.randomUUID();
  const q = req.url.indexOf('?');
  const rawPath = q < 0 ? req.url : req.url.slice(0, q);
  const rawQuery = q < 0 ? '' : req.url.slice(q + 1);
  let note = '';
  try {
    const invoke = INVOKE_PATH.exec(rawPath);
    if (invoke) {
      note = await onInvoke(req, res, invoke[1], rawPath, rawQuery, requestId);
    } else if (rawPath.startsWith('/control/')) {
      await onControl(req, res, rawPath.slice('/control/'.length));
    } else {
      throw new AwsError(404, 'UnknownOperationException', 'Unknown operation');
    }
  } catch (err) {
    if (err instanceof AwsError) {
      note = err.type;
      sendAwsError(res, err, requestId);
    } else {
      note = `error ${printable(err && err.message)}`;
      sendJson(res, 500, { message: 'fake failure' });
    }
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  // Never the Authorization header, the body or a token.
  kit.log(`${req.method} ${printable(rawPath).slice(0, 200)} ${res.headersSent ? res.statusCode : '-'} ` +
    `${ms.toFixed(1)}ms ${note}`);
}

let server = null;

function main() {
  server = kit.createServer(opts, onRequest);
  if (tls) {
    server.on('secureConnection', (socket) => {
      state.stats.tls_connections += 1;
      state.servernames.push(socket.servername || '');
      if (state.servernames.length > 20) state.servernames.shift();
    });
  }
  if (opts.exitWithParent) kit.exitWithParent();
  server.keepAliveTimeout = opts.keepAliveTimeout;
  server.headersTimeout = Math.max(opts.keepAliveTimeout + 1000, 60000);

  server.on('connection', (socket) => {
    state.stats.connections += 1;
    state.open += 1;
    socket.on('close', () => {
      state.open -= 1;
    });
  });

  kit.listen(server, opts, (port) => ({ port, endpoint: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`, region: opts.region }),
    () => `region ${opts.region} keys ${[...opts.keys.keys()].join(',')}`);
  kit.handleProcessEvents();
}

// ---- self-test: AWS's own SigV4 test suite ---------------------------------------------------

// `--self-test DIR`: every case folder of AWS's SigV4 test suite in DIR (as kept in
// tests/unit/aws/data/sigv4: CASE/CASE.req, .creq, .authz) through signatureFor(): the
// canonical request must equal .creq and the signature the one in .authz. Exit 0 when all do.
function selfTest(dir) {
  let passed = 0;
  let failed = 0;
  for (const name of fs.readdirSync(dir).sort()) {
    const base = path.join(dir, name, name);
    if (!fs.existsSync(`${base}.req`) || name === 'get-header-value-multiline') continue;
    const text = fs.readFileSync(`${base}.req`, 'utf8');
    const blank = text.indexOf('\n\n');
    const head = (blank < 0 ? text : text.slice(0, blank)).split('\n');
    const body = blank < 0 ? '' : text.slice(blank + 2);
    const requestLine = head[0].replace(/ HTTP\/1\.1$/, '');
    const sp = requestLine.indexOf(' ');
    const method = requestLine.slice(0, sp);
    const target = requestLine.slice(sp + 1);
    const q = target.indexOf('?');
    const rawHeaders = [];
    for (const line of head.slice(1)) {
      const colon = line.indexOf(':');
      rawHeaders.push(line.slice(0, colon), line.slice(colon + 1));
    }
    const authz = fs.readFileSync(`${base}.authz`, 'utf8');
    const m = /Credential=[^/]+\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})/.exec(authz);
    const amzDate = (head.find((l) => /^x-amz-date:/i.test(l)) || '').replace(/^[^:]*:/, '').trim();
    const got = signatureFor({
      method, rawPath: q < 0 ? target : target.slice(0, q), rawQuery: q < 0 ? '' : target.slice(q + 1),
      rawHeaders, signedHeadersText: m[4], body: Buffer.from(body, 'utf8'), secret: DEFAULT_SECRET,
      amzDate, scopeDate: m[1], region: m[2], service: m[3],
    });
    const creq = fs.readFileSync(`${base}.creq`, 'utf8');
    if (got && got.canonical === creq && got.signature.toString('hex') === m[5]) {
      passed += 1;
    } else {
      failed += 1;
      process.stderr.write(`self-test ${name}: FAIL\n--- expected\n${creq}\n--- got\n${got ? got.canonical : '(null)'}\n`);
    }
  }
  process.stdout.write(`invoke_server self-test: ${passed} passed, ${failed} failed\n`);
  return failed === 0 && passed > 0;
}

if (isMain) {
  const at = process.argv.indexOf('--self-test');
  if (at >= 0) {
    if (at + 1 >= process.argv.length) usage('--self-test needs the test-suite folder');
    process.exit(selfTest(process.argv[at + 1]) ? 0 : 1);
  }
  main();
}

module.exports = { canonicalUri, canonicalQuery, canonicalHeaders, signatureFor, parseFunctionRef };
