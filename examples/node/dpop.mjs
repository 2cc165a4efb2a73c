// DPoP-bound sessions from Node.js (RFC 9449), with panva's `dpop` package
// making the proofs: the client's key never leaves it, and every Verify and
// Refresh carries a fresh proof signed by it. Prints JSON lines.
//
// Usage: npm ci && node dpop.mjs 127.0.0.1:50051
import * as DPoP from 'dpop';
import tessera from './tessera.js';

const { grpc, pb, reason } = tessera;

const client = new pb.TokenAuthority(process.argv[2], grpc.credentials.createInsecure());
const call = (method, request) => new Promise((resolve, reject) =>
  client[method](request, (err, resp) => (err ? reject(err) : resolve(resp))));
const outcome = (p) => p.then(() => 'OK', (err) => reason(err));
const emit = (step, fields) => console.log(JSON.stringify({ step, ...fields }));

const API = 'https://api.example.com/orders';
const TOKEN_ENDPOINT = 'https://auth.example.com/token';

const key = await DPoP.generateKeyPair('ES256');
const jkt = await DPoP.calculateThumbprint(key.publicKey);
const issued = await call('Issue', { subject: 'alice', tenant: 'acme', audience: ['api'], dpop_jkt: jkt });
const token = issued.tokens.access_token;
const cnf = JSON.parse(Buffer.from(token.split('.')[1], 'base64url')).cnf;
emit('issue', { bound: cnf.jkt === jkt });

const verify = (proof) => call('Verify', {
  access_token: token, dpop_proof: proof, http_method: 'GET', http_url: API,
});
const proof = await DPoP.generateProof(key, API, 'GET', undefined, token);
emit('verify', { result: await outcome(verify(proof)) });
emit('replay', { result: await outcome(verify(proof)) });
emit('no_proof', { result: await outcome(verify('')) });

const stranger = await DPoP.generateKeyPair('ES256');
const refresh = async (k) => call('Refresh', {
  refresh_token: issued.tokens.refresh_token,
  dpop_proof: await DPoP.generateProof(k, TOKEN_ENDPOINT, 'POST'),
  http_method: 'POST', http_url: TOKEN_ENDPOINT,
});
emit('refresh_other_key', { result: await outcome(refresh(stranger)) });
const rotated = await refresh(key);
emit('refresh', { rotated: rotated.tokens.refresh_token !== issued.tokens.refresh_token });
client.close();
