'use strict';
// A test authorizer for lambda-local (run by examples/functions/lambda/node/runtime.js).
// The request's X-Mode header picks the behaviour; see ../README.md.
const fs = require('node:fs');
const http = require('node:http');

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

exports.handler = async (event, context) => {
  const h = event.headers || {};
  const mode = h['x-mode'] || 'allow';
  switch (mode) {
    case 'allow':
      return {
        isAuthorized: true,
        context: { tenant: h['x-tenant'] || 'acme', pid: process.pid, request_id: context.awsRequestId },
      };
    case 'deny':
      return { isAuthorized: false, context: { why: 'told to' } };
    case 'policy': {
      // Allows GET /orders/* only, whatever route asked.
      const api = event.routeArn.split('/').slice(0, 2).join('/');
      return {
        principalId: 'policy-user',
        policyDocument: {
          Version: '2012-10-17',
          Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: `${api}/GET/orders/*` }],
        },
        context: { tenant: 'policy' },
      };
    }
    case 'sleep':
      await sleep(Number(h['x-sleep-ms'] || 60000));
      return { isAuthorized: true };
    case 'exit':
      process.exit(3);
      break;
    case 'throw':
      throw new TypeError('told to throw');
    case 'env':
      return {
        isAuthorized: true,
        context: {
          function_name: process.env.AWS_LAMBDA_FUNCTION_NAME || '',
          version: process.env.AWS_LAMBDA_FUNCTION_VERSION || '',
          memory: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE || '',
          region: process.env.AWS_REGION || '',
          tz: process.env.TZ || '',
          handler: process.env._HANDLER || '',
          task_root: process.env.LAMBDA_TASK_ROOT || '',
          cwd: process.cwd(),
          extra: process.env.FAKE_EXTRA || '',
          arn: context.invokedFunctionArn || '',
          remaining_ok: String(context.getRemainingTimeInMillis() > 0),
          stdin: fs.readlinkSync('/proc/self/fd/0'),
          secret_leaked: String(process.env.PORTCULLIS_TEST_SECRET !== undefined),
          route_arn: event.routeArn || '',
          identity: (event.identitySource || []).join(','),
        },
      };
    case 'second-poll': {
      // Answers at once; then, once the file X-Trigger-File exists (the runtime's own
      // `next` is waiting by then), polls `next` once more on a connection of its own and
      // writes the status it got (or `error …`) into X-Result-File.
      const trigger = h['x-trigger-file'];
      const result = h['x-result-file'];
      const api = process.env.AWS_LAMBDA_RUNTIME_API;
      const colon = api.lastIndexOf(':');
      const started = Date.now();
      const tick = () => {
        if (!fs.existsSync(trigger)) {
          if (Date.now() - started < 60000) setTimeout(tick, 20);
          return;
        }
        http
          .get(
            { host: api.slice(0, colon), port: Number(api.slice(colon + 1)), agent: false, path: '/2018-06-01/runtime/invocation/next' },
            (res) => {
              res.resume();
              fs.writeFileSync(result, String(res.statusCode));
            },
          )
          .on('error', (e) => fs.writeFileSync(result, `error ${e.message}`));
      };
      setTimeout(tick, 20);
      return { isAuthorized: true, context: { pid: process.pid } };
    }
    case 'big':
      return { isAuthorized: true, context: { pad: 'x'.repeat(Number(h['x-size'] || 2000000)) } };
    default:
      return { isAuthorized: false };
  }
};
