// node-oidc-provider with its default in-memory adapter, introspection on,
// for the benchmark beside Tessera's introspection (scripts/bench-introspect):
//
//   node server.mjs <port>
//
// One confidential client, "gateway" / "change-me", that may get access
// tokens by client_credentials and introspect them.
import Provider from 'oidc-provider';

const port = Number(process.argv[2] || 3000);
const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: 'gateway',
    client_secret: 'change-me',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  features: {
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    devInteractions: { enabled: false },
  },
  scopes: ['read'],
});
provider.listen(port, '127.0.0.1', () => console.log(`listening on ${port}`));
