'use strict';
// A test authorizer for lambda-local (run by examples/functions/lambda/node/runtime.js).
// The request's X-Mode header picks the behaviour; see ../README.md.
const fs = require('node:fs');

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
    case 'big':
      return { isAuthorized: true, context: { pad: 'x'.repeat(Number(h['x-size'] || 2000000)) } };
    default:
      return { isAuthorized: false };
  }
};
