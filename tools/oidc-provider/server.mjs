// node-oidc-provider with its default in-memory adapter, for the benchmarks
// beside Tessera (scripts/bench-introspect, scripts/bench-peers):
//
//   node server.mjs <port>
//
// One confidential client, "gateway" / "change-me", that may get access
// tokens by client_credentials and introspect them. Without a resource
// indicator the access token is opaque (stored in the memory adapter; what
// bench-introspect introspects); with `resource=urn:tessera:bench` it is a
// JWT signed EdDSA (Ed25519, as Tessera signs) and nothing is stored (what
// bench-peers issues). Both signing keys are made at start: the RSA one keeps
// the provider's defaults (RS256 for everything else), as before.
import { generateKeyPairSync } from 'node:crypto';
import Provider, { errors } from 'oidc-provider';

const port = Number(process.argv[2] || 3000);
const RESOURCE = 'urn:tessera:bench';
const jwk = (type, options) => generateKeyPairSync(type, options).privateKey.export({ format: 'jwk' });
const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: 'gateway',
    client_secret: 'change-me',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: {
    keys: [
      { ...jwk('rsa', { modulusLength: 2048 }), use: 'sig', alg: 'RS256', kid: 'rs' },
      { ...jwk('ed25519'), use: 'sig', alg: 'EdDSA', kid: 'ed' },
    ],
  },
  features: {
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      getResourceServerInfo(_ctx, resourceIndicator) {
        if (resourceIndicator !== RESOURCE) throw new errors.InvalidTarget();
        return {
          scope: 'read',
          audience: 'api',
          accessTokenTTL: 15 * 60,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'EdDSA' } },
        };
      },
    },
  },
  scopes: ['read'],
});
provider.listen(port, '127.0.0.1', () => console.log(`listening on ${port}`));
