// What both examples share: the authority's stubs, loaded from the proto at
// run time by @grpc/proto-loader (nothing generated is checked in), and the
// ErrorInfo reason of a failed call.
'use strict';

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const PROTO = path.join(__dirname, '..', '..', 'proto', 'tessera', 'v1', 'tessera.proto');
const def = protoLoader.loadSync(PROTO, {
  includeDirs: [path.join(__dirname, '..', '..', 'proto')],
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
});
const pb = grpc.loadPackageDefinition(def).tessera.v1;

// google.rpc.Status and ErrorInfo, just the fields needed to read the reason.
const rpcTypes = protobuf.parse(`
  syntax = "proto3";
  message Any { string type_url = 1; bytes value = 2; }
  message Status { int32 code = 1; string message = 2; repeated Any details = 3; }
  message ErrorInfo { string reason = 1; string domain = 2; map<string, string> metadata = 3; }
`, { keepCase: true }).root;

/** The ErrorInfo reason Tessera puts in every error (DESIGN §3). */
function reason(err) {
  const bin = err.metadata && err.metadata.get('grpc-status-details-bin')[0];
  if (!bin) return '';
  const status = rpcTypes.lookupType('Status').decode(bin);
  for (const d of status.details) {
    if (d.type_url.endsWith('google.rpc.ErrorInfo')) {
      return rpcTypes.lookupType('ErrorInfo').decode(d.value).reason;
    }
  }
  return '';
}

module.exports = { grpc, pb, reason };
