// Tessera's OAuth HTTP endpoints driven by a standard OAuth library,
// panva's oauth4webapi, found by discovery (RFC 8414) — nothing here knows
// Tessera's paths:
//
//   node oauth.mjs <issuer URL> <refresh token> <client id> <client secret>
//
// The issuer is `--issuer` (an https URL; give the CA with
// NODE_EXTRA_CA_CERTS). The refresh token comes from a gRPC Issue; the
// client id and secret are a caller of the callers file allowed Verify and
// Revoke. Prints one JSON line per step.
import * as oauth from 'oauth4webapi';

const [issuerArg, refreshToken, clientId, clientSecret] = process.argv.slice(2);
if (!clientSecret) {
  console.error('usage: node oauth.mjs <issuer URL> <refresh token> <client id> <client secret>');
  process.exit(2);
}
const issuer = new URL(issuerArg);
const step = (name, fields) => console.log(JSON.stringify({ step: name, ...fields }));

// 1. Discovery: the library checks that `issuer` is the URL it asked.
const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer));
step('discovery', {
  issuer: as.issuer,
  token_endpoint: as.token_endpoint,
  introspection_endpoint: as.introspection_endpoint,
  revocation_endpoint: as.revocation_endpoint,
});

// 2. Silent refresh as a public client (no client authentication).
const publicClient = { client_id: 'spa' };
const refreshed = await oauth.processRefreshTokenResponse(
  as,
  publicClient,
  await oauth.refreshTokenGrantRequest(as, publicClient, oauth.None(), refreshToken),
);
step('refresh', {
  token_type: refreshed.token_type,
  expires_in: refreshed.expires_in,
  scope: refreshed.scope,
  rotated: refreshed.refresh_token !== refreshToken,
});

// 3. Introspection by a confidential client (HTTP Basic).
const gateway = { client_id: clientId };
const auth = oauth.ClientSecretBasic(clientSecret);
const introspect = async (token) =>
  oauth.processIntrospectionResponse(
    as,
    gateway,
    await oauth.introspectionRequest(as, gateway, auth, token),
  );
const active = await introspect(refreshed.access_token);
step('introspect', { active: active.active, sub: active.sub, scope: active.scope, iss: active.iss });

// 4. Revocation (RFC 7009), then introspection again.
await oauth.processRevocationResponse(
  await oauth.revocationRequest(as, gateway, auth, refreshed.access_token),
);
step('revoke', { ok: true });
// The revocation reaches this replica's cache through the feed: poll briefly.
let after = await introspect(refreshed.access_token);
for (let i = 0; i < 50 && after.active; i += 1) {
  await new Promise((r) => setTimeout(r, 100));
  after = await introspect(refreshed.access_token);
}
step('introspect_revoked', { active: after.active, keys: Object.keys(after) });
