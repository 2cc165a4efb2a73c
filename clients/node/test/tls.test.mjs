// TLS, mTLS and API keys against a real Tessera (callers file), and the
// middleware reading a client certificate's thumbprint for a
// certificate-bound token over HTTPS.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:https";
import { request } from "node:https";
import { Metadata, Server, ServerCredentials, status } from "@grpc/grpc-js";
import { LocalVerifier, TesseraClient, TokenError, certThumbprint, claimsOf, expressMiddleware, pb, serverInterceptor } from "@tessera/client";
import { join, keygen, reasonOf, startRedis, startTessera, tempDir } from "./harness.mjs";

const ISSUER = "tessera-test";

function makePki(dir) {
  const ossl = (...args) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test-ca");
  const leaf = (name, subj, ext) => {
    writeFileSync(join(dir, `${name}.ext`), ext);
    ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", subj);
    ossl("x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", `${name}.pem`, "-days", "2", "-extfile", `${name}.ext`);
  };
  leaf("server", "/CN=localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  leaf("verifier", "/CN=verifier", "subjectAltName=URI:spiffe://test/verifier\nextendedKeyUsage=clientAuth\n");
  leaf("login", "/CN=login", "subjectAltName=URI:spiffe://test/login\nextendedKeyUsage=clientAuth\n");
  const r = (f) => readFileSync(join(dir, f));
  return { dir, ca: r("ca.pem"), server: { cert: r("server.pem"), key: r("server.key") }, verifier: { cert: r("verifier.pem"), key: r("verifier.key") }, login: { cert: r("login.pem"), key: r("login.key") } };
}

describe("TLS, mTLS and API keys", () => {
  let redis, server, pki;
  const apiKey = "login-service-key-0123456789abcdef";
  before(async () => {
    const dir = tempDir();
    pki = makePki(dir);
    const sha = createHash("sha256").update(apiKey).digest("hex");
    writeFileSync(
      join(dir, "callers.toml"),
      `[[caller]]\nname = "login"\napi_key_sha256 = "${sha}"\nallow = ["*"]\n\n` +
        `[[caller]]\nname = "verifier"\ntls_uri = "spiffe://test/verifier"\nallow = ["Verify", "WatchRevocations", "GetJwks"]\n`,
    );
    redis = await startRedis();
    server = await startTessera({
      redisUrl: redis.url,
      signingKey: keygen(dir, "k.pem"),
      args: ["--tls-cert", join(dir, "server.pem"), "--tls-key", join(dir, "server.key"), "--tls-client-ca", join(dir, "ca.pem"), "--callers", join(dir, "callers.toml")],
    });
  });
  after(async () => {
    await server?.stop();
    await redis?.stop();
  });

  const tls = (who) => ({ ca: pki.ca, cert: pki[who].cert, key: pki[who].key });

  it("API key over mTLS: allowed; wrong or missing credentials refused with the server's reason", async () => {
    const login = new TesseraClient({ target: server.target, apiKey, tls: tls("login") });
    const bad = new TesseraClient({ target: server.target, apiKey: "wrong-key", tls: tls("login") });
    const verifierCert = new TesseraClient({ target: server.target, tls: tls("verifier") });
    try {
      const { tokens } = await login.issue({ subject: "alice", audience: ["api"] });
      assert.ok(tokens.accessToken);
      assert.equal(await reasonOf(bad.issue({ subject: "alice" })), "CALLER_UNAUTHENTICATED");
      assert.equal(await reasonOf(verifierCert.issue({ subject: "alice" })), "CALLER_NOT_ALLOWED");
      assert.equal(await reasonOf(verifierCert.verify({ accessToken: tokens.accessToken })), "");
    } finally {
      login.close();
      bad.close();
      verifierCert.close();
    }
  });

  it("plaintext to a TLS port fails; TLS without a client certificate is refused", async () => {
    const plain = new TesseraClient({ target: server.target, timeoutMs: 2000 });
    const noCert = new TesseraClient({ target: server.target, apiKey, tls: { ca: pki.ca }, timeoutMs: 2000 });
    try {
      for (const c of [plain, noCert]) {
        const err = await c.jwks().then(() => undefined, (e) => e);
        assert.ok(err instanceof TokenError, "refused");
        assert.equal(err.code, status.UNAVAILABLE);
      }
    } finally {
      plain.close();
      noCert.close();
    }
  });

  it("LocalVerifier over mTLS (certificate identity), and a certificate-bound token over HTTPS middleware", async () => {
    const login = new TesseraClient({ target: server.target, apiKey, tls: tls("login") });
    const v = new LocalVerifier({ target: server.target, tls: tls("verifier"), issuer: ISSUER, audience: "api" });
    const clientCert = tls("login");
    const thumb = certThumbprint(new X509Certificate(clientCert.cert).raw);
    const https = createServer({ cert: pki.server.cert, key: pki.server.key, ca: pki.ca, requestCert: true, rejectUnauthorized: false }, (req, res) =>
      expressMiddleware(v)(req, res, () => res.end(req.tessera.subject)),
    );
    try {
      await v.start();
      const bound = (await login.issue({ subject: "holder", audience: ["api"], certThumbprint: thumb })).tokens.accessToken;
      assert.equal(await reasonOf(v.verify(bound)), "TOKEN_BINDING_MISMATCH");
      assert.equal((await v.verify(bound, { certThumbprint: thumb })).subject, "holder");
      await new Promise((r) => https.listen(0, "127.0.0.1", r));
      const get = (withCert) =>
        new Promise((resolve, reject) => {
          const req = request(
            {
              host: "127.0.0.1",
              port: https.address().port,
              ca: pki.ca,
              servername: "localhost",
              headers: { authorization: `Bearer ${bound}` },
              ...(withCert ? { cert: clientCert.cert, key: clientCert.key } : {}),
            },
            (res) => {
              let body = "";
              res.on("data", (d) => (body += d));
              res.on("end", () => resolve({ status: res.statusCode, body, challenge: res.headers["www-authenticate"] }));
            },
          );
          req.on("error", reject);
          req.end();
        });
      assert.deepEqual(await get(true), { status: 200, body: "holder", challenge: undefined });
      const refused = await get(false);
      assert.equal(refused.status, 401);
      assert.match(refused.challenge, /error="invalid_token", error_description="TOKEN_BINDING_MISMATCH"/);
    } finally {
      https.close();
      v.close();
      login.close();
    }
  });

  it("grpc-js interceptor on an mTLS server: a certificate-bound token verifies only with its client certificate", async () => {
    const login = new TesseraClient({ target: server.target, apiKey, tls: tls("login") });
    const v = new LocalVerifier({ target: server.target, tls: tls("verifier"), issuer: ISSUER, audience: "api" });
    const srv = new Server({ interceptors: [serverInterceptor(v)] });
    srv.addService(pb.TokenAuthorityService, {
      getJwks(call, cb) {
        cb(null, { jwksJson: claimsOf(call).subject });
      },
    });
    // grpc-js exposes the peer certificate only when it verified it.
    const creds = ServerCredentials.createSsl(pki.ca, [{ cert_chain: pki.server.cert, private_key: pki.server.key }], true);
    const port = await new Promise((res, rej) => srv.bindAsync("127.0.0.1:0", creds, (e, p) => (e ? rej(e) : res(p))));
    const call = (client, token) =>
      new Promise((resolve, reject) => {
        const md = new Metadata();
        md.set("authorization", `Bearer ${token}`);
        client.raw.getJwks({}, md, (e, r) => (e ? reject(TokenError.fromServiceError(e)) : resolve(r.jwksJson)));
      });
    const withCert = new TesseraClient({ target: `127.0.0.1:${port}`, tls: tls("login") });
    const otherCert = new TesseraClient({ target: `127.0.0.1:${port}`, tls: tls("verifier") });
    const noCert = new TesseraClient({ target: `127.0.0.1:${port}`, tls: { ca: pki.ca } });
    try {
      await v.start();
      const thumb = certThumbprint(new X509Certificate(pki.login.cert).raw);
      const bound = (await login.issue({ subject: "grpc-holder", audience: ["api"], certThumbprint: thumb })).tokens.accessToken;
      assert.equal(await call(withCert, bound), "grpc-holder");
      assert.equal(await reasonOf(call(otherCert, bound)), "TOKEN_BINDING_MISMATCH");
      const refused = await call(noCert, bound).then(() => undefined, (e) => e);
      assert.equal(refused?.code, status.UNAVAILABLE); // no client certificate: no handshake
    } finally {
      for (const c of [withCert, otherCert, noCert, login]) c.close();
      v.close();
      srv.forceShutdown();
    }
  });
});
