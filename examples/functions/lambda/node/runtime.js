'use strict';
// A minimal AWS Lambda runtime interface client for Node.js handlers: built-in modules
// only, no npm. It does what AWS's `aws-lambda-ric` does for a `module.function` handler:
//
//   node runtime.js [HANDLER]      # HANDLER defaults to $_HANDLER, e.g. index.handler
//
// - loads HANDLER's module from $LAMBDA_TASK_ROOT (else the working directory); a load
//   failure is reported to POST /runtime/init/error, then the process exits 1;
// - loops: GET /runtime/invocation/next (a long poll) → handler(event, context[, callback])
//   → POST /runtime/invocation/{id}/response with JSON.stringify(result), or
//   POST /runtime/invocation/{id}/error with {errorType, errorMessage, stackTrace} and a
//   Lambda-Runtime-Function-Error-Type header when the handler throws or rejects;
// - handlers may be async, return a value, or call the callback; `context` carries
//   awsRequestId, invokedFunctionArn, functionName, functionVersion, memoryLimitInMB and
//   getRemainingTimeInMillis();
// - exits 1 when the Runtime API goes away (the host restarts the process if it wants one).
//
// Works with portcullis' `runtime: lambda-local` and with anything else that speaks the
// Lambda Runtime API 2018-06-01.
const http = require('node:http');
const path = require('node:path');

const API = process.env.AWS_LAMBDA_RUNTIME_API;
const HANDLER = process.argv[2] || process.env._HANDLER || '';
const TASK_ROOT = process.env.LAMBDA_TASK_ROOT || process.cwd();
const BASE = '/2018-06-01/runtime';

if (!API) {
  console.error('runtime.js: AWS_LAMBDA_RUNTIME_API is not set');
  process.exit(2);
}
const colon = API.lastIndexOf(':');
const HOST = API.slice(0, colon);
const PORT = Number(API.slice(colon + 1));
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function call(method, urlPath, body, headers) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(body);
    const req = http.request(
      {
        host: HOST,
        port: PORT,
        method,
        path: urlPath,
        agent,
        headers: {
          ...(headers || {}),
          ...(data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {}),
        },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

function errorDocument(err, fallbackType) {
  const e = err instanceof Error ? err : new Error(String(err));
  return {
    errorType: e.name && e.name !== 'Error' ? e.name : fallbackType,
    errorMessage: e.message,
    stackTrace: String(e.stack || '').split('\n').slice(1).map((l) => l.trim()),
  };
}

async function postError(urlPath, err, fallbackType) {
  const doc = errorDocument(err, fallbackType);
  await call('POST', urlPath, JSON.stringify(doc), { 'Lambda-Runtime-Function-Error-Type': doc.errorType });
}

function loadHandler() {
  const dot = HANDLER.lastIndexOf('.');
  if (dot <= 0 || dot === HANDLER.length - 1) {
    const e = new Error(`bad handler '${HANDLER}': expected module.function`);
    e.name = 'Runtime.MalformedHandlerName';
    throw e;
  }
  const file = path.resolve(TASK_ROOT, HANDLER.slice(0, dot));
  let mod;
  try {
    mod = require(file);
  } catch (err) {
    err.name = 'Runtime.ImportModuleError';
    throw err;
  }
  const fn = mod[HANDLER.slice(dot + 1)];
  if (typeof fn !== 'function') {
    const e = new Error(`${HANDLER} is not a function`);
    e.name = 'Runtime.HandlerNotFound';
    throw e;
  }
  return fn;
}

// Runs a handler of any style (async, sync return, callback) to one settled result.
function run(handler, event, context) {
  return new Promise((resolve, reject) => {
    let settled = false;
    const callback = (err, result) => {
      if (settled) return;
      settled = true;
      if (err) reject(err);
      else resolve(result);
    };
    try {
      const r = handler(event, context, callback);
      if (r && typeof r.then === 'function') r.then((v) => callback(null, v), (e) => callback(e));
      else if (handler.length < 3) callback(null, r);
    } catch (err) {
      callback(err);
    }
  });
}

async function main() {
  let handler;
  try {
    handler = loadHandler();
  } catch (err) {
    console.error(`runtime.js: cannot load ${HANDLER}: ${err.message}`);
    await postError(`${BASE}/init/error`, err, 'Runtime.Unknown').catch(() => {});
    process.exit(1);
  }
  for (;;) {
    const next = await call('GET', `${BASE}/invocation/next`);
    if (next.status !== 200) throw new Error(`next: HTTP ${next.status}`);
    const id = next.headers['lambda-runtime-aws-request-id'];
    const deadline = Number(next.headers['lambda-runtime-deadline-ms']);
    const context = {
      awsRequestId: id,
      invokedFunctionArn: next.headers['lambda-runtime-invoked-function-arn'],
      functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
      functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
      memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
      callbackWaitsForEmptyEventLoop: true,
      getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    };
    let result;
    try {
      result = await run(handler, JSON.parse(next.body), context);
    } catch (err) {
      await postError(`${BASE}/invocation/${id}/error`, err, 'Error');
      continue;
    }
    await call('POST', `${BASE}/invocation/${id}/response`, JSON.stringify(result === undefined ? null : result));
  }
}

main().catch((err) => {
  console.error(`runtime.js: ${err.message}`);
  process.exit(1);
});
