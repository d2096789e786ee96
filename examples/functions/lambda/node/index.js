'use strict';
// An API Gateway Lambda authorizer (HTTP API, payload 2.0) that answers with an IAM policy,
// as authorizers written for REST APIs do. portcullis evaluates the policy against each
// request's route ARN (arn:aws:execute-api:REGION:ACCOUNT:API/STAGE/METHOD/PATH), so this
// one lets a caller GET /reports/* and nothing else.
//
// Demo credentials: `Authorization: Bearer demo-TENANT` (TENANT: 1-32 of [a-z0-9]).
// Anything else is denied. A real authorizer verifies a token here.
exports.handler = async (event) => {
  const auth = (event.headers && event.headers.authorization) || '';
  const m = /^Bearer demo-([a-z0-9]{1,32})$/.exec(auth);
  if (!m) {
    return { isAuthorized: false }; // payload 2.0 also takes the simple format
  }
  // "arn:aws:execute-api:local:000000000000:portcullis/$default/GET/reports/7"
  // → "arn:aws:execute-api:local:000000000000:portcullis/$default"
  const api = event.routeArn.split('/').slice(0, 2).join('/');
  return {
    principalId: `tenant-${m[1]}`,
    policyDocument: {
      Version: '2012-10-17',
      Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: [`${api}/GET/reports/*`] }],
    },
    context: { tenant: m[1], runtime: 'node' },
  };
};
