// Tessera from Node.js: issue, verify, refresh with reuse handling, revoke,
// and a revocation watcher. Stubs are loaded from the proto at run time by
// @grpc/proto-loader (nothing generated is checked in). Prints JSON lines.
//
// Usage: npm ci && node client.js 127.0.0.1:50051 [API_KEY]
'use strict';

const { grpc, pb, reason } = require('./tessera');

function emit(step, fields) {
  console.log(JSON.stringify({ step, ...fields }));
}

function call(client, method, request, metadata) {
  return new Promise((resolve, reject) => {
    client[method](request, metadata, (err, resp) => (err ? reject(err) : resolve(resp)));
  });
}

async function main() {
  const addr = process.argv[2];
  const metadata = new grpc.Metadata();
  if (process.argv[3]) metadata.set('x-tessera-key', process.argv[3]);
  const client = new pb.TokenAuthority(addr, grpc.credentials.createInsecure());

  const events = [];
  const watch = client.WatchRevocations({ include_snapshot: true }, metadata);
  watch.on('data', (ev) => events.push(ev));
  watch.on('error', () => {});

  const pair = (await call(client, 'Issue', { subject: 'alice', tenant: 'acme', audience: ['api'], scopes: ['read'] }, metadata)).tokens;
  emit('issue', { session_id: pair.session_id, expires_in: pair.expires_in, token_type: pair.token_type });

  const verified = await call(client, 'Verify', { access_token: pair.access_token, audience: 'api', required_scopes: ['read'] }, metadata);
  emit('verify', { subject: verified.claims.subject, tenant: verified.claims.tenant, scopes: verified.claims.scopes });

  const rotated = (await call(client, 'Refresh', { refresh_token: pair.refresh_token }, metadata)).tokens;
  emit('refresh', { rotated: rotated.refresh_token !== pair.refresh_token, session_id: rotated.session_id });

  // Replaying a rotated refresh token after the grace window is theft: the
  // session is revoked and the user must sign in again.
  try {
    await call(client, 'Refresh', { refresh_token: pair.refresh_token }, metadata);
    emit('replay', { reason: '' });
  } catch (err) {
    emit('replay', { code: grpc.status[err.code], reason: reason(err) });
  }
  try {
    await call(client, 'Verify', { access_token: rotated.access_token, consistency: 'CONSISTENCY_STRONG' }, metadata);
    emit('verify_after_reuse', { reason: '' });
  } catch (err) {
    emit('verify_after_reuse', { reason: reason(err) });
  }

  const other = (await call(client, 'Issue', { subject: 'bob', tenant: 'acme' }, metadata)).tokens;
  const revoked = await call(client, 'Revoke', { session_id: other.session_id, reason: 'node example' }, metadata);
  emit('revoke', { cursor_set: revoked.cursor.length > 0 });

  const deadline = Date.now() + 5000;
  while (events.length < 2 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10));
  }
  emit('watch', { events: events.length, kinds: [...new Set(events.map((e) => e.kind))].sort() });
  watch.cancel();
  client.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
