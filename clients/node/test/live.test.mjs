// Live scenarios against real Tessera servers on real Redis servers
// (started here on free loopback ports, stopped afterwards).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { createServer, request } from "node:http";
import { Metadata, Server, ServerCredentials, status } from "@grpc/grpc-js";
import { LocalVerifier, TesseraClient, TokenError, claimsOf, expressMiddleware, pb, serverInterceptor } from "@tessera/client";
import { eventually, join, keygen, reasonOf, sleep, startRedis, startTessera, tempDir, writeFileSync } from "./harness.mjs";

const ISSUER = "tessera-test";
const b64sha = (s) => createHash("sha256").update(s).digest("base64url");

describe("live: one Tessera on Redis", () => {
  let redis, server, client, verifier;
  before(async () => {
    redis = await startRedis();
    const dir = tempDir();
    server = await startTessera({ redisUrl: redis.url, signingKey: keygen(dir, "k.pem") });
    client = new TesseraClient({ target: server.target });
    verifier = new LocalVerifier({ target: server.target, issuer: ISSUER, audience: "api" });
    await verifier.start();
  });
  after(async () => {
    verifier?.close();
    client?.close();
    await server?.stop();
    await redis?.stop();
  });

  const issue = async (subject, extra = {}) =>
    (await client.issue({ subject, tenant: "acme", audience: ["api"], roles: ["r1"], scopes: ["read", "write"], ...extra })).tokens;

  it("verifies a fresh token with the claims the server gives", async () => {
    const t = await issue("alice");
    const local = await verifier.verify(t.accessToken);
    const remote = (await client.verify({ accessToken: t.accessToken, audience: "api" })).claims;
    assert.equal(local.subject, remote.subject);
    assert.equal(local.tenant, remote.tenant);
    assert.equal(local.sessionId, remote.sessionId);
    assert.equal(local.sessionId, t.sessionId);
    assert.equal(local.tokenId, remote.tokenId);
    assert.deepEqual([...local.roles], remote.roles);
    assert.deepEqual([...local.scopes], remote.scopes);
    assert.equal(local.expiresAt, remote.expiresAt.seconds);
    assert.equal(local.issuedAt, remote.issuedAt.seconds);
    assert.ok(verifier.inSync());
  });

  for (const [what, target] of [
    ["token", (t) => ({ token: t.accessToken })],
    ["session", (t) => ({ sessionId: t.sessionId })],
    ["subject", (t, subject) => ({ subject: { tenant: "acme", subject } })],
  ]) {
    it(`a revocation by ${what} is denied locally within 1 s`, async () => {
      const subject = `sub-${what}-${Date.now()}`;
      const t = await issue(subject);
      const bystander = await issue(`${subject}-other`);
      await verifier.verify(t.accessToken); // cached
      await client.revoke(target(t, subject));
      const ms = await eventually(`TOKEN_REVOKED by ${what}`, 1000, async () => (await reasonOf(verifier.verify(t.accessToken))) === "TOKEN_REVOKED", 1);
      assert.ok(ms < 1000, `${ms} ms`);
      assert.equal(await reasonOf(client.verify({ accessToken: t.accessToken })), "TOKEN_REVOKED");
      assert.equal((await verifier.verify(bystander.accessToken)).subject, `${subject}-other`);
    });
  }

  it("an exchanged token verifies for its audience and dies with its parent session within 1 s", async () => {
    // RFC 8693 (issue #29): the derived token is an access token of the
    // parent's session, so the session's revocation reaches it through the feed.
    const subject = `exchange-${Date.now()}`;
    const t = await issue(subject);
    const derived = await client.exchange({ subjectToken: t.accessToken, audience: ["billing"], scopes: ["read"] });
    assert.equal(derived.issuedTokenType, "urn:ietf:params:oauth:token-type:access_token");
    const billing = new LocalVerifier({ target: server.target, issuer: ISSUER, audience: "billing" });
    await billing.start();
    try {
      const claims = await billing.verify(derived.accessToken);
      assert.equal(claims.subject, subject);
      assert.equal(claims.sessionId, t.sessionId);
      assert.deepEqual([...claims.scopes], ["read"]);
      assert.equal(await reasonOf(billing.verify(t.accessToken)), "AUDIENCE_MISMATCH");
      await client.revoke({ sessionId: t.sessionId });
      const ms = await eventually("derived token revoked", 1000, async () => (await reasonOf(billing.verify(derived.accessToken))) === "TOKEN_REVOKED", 1);
      assert.ok(ms < 1000, `${ms} ms`);
    } finally {
      billing.close();
    }
  });

  it("a subject revocation kills only tokens issued before its cut-off", async () => {
    const subject = `cutoff-${Date.now()}`;
    const old = await issue(subject);
    await client.revoke({ subject: { tenant: "acme", subject } });
    await eventually("old token revoked", 1000, async () => (await reasonOf(verifier.verify(old.accessToken))) === "TOKEN_REVOKED", 1);
    // Tokens issued within the cut-off's second are dead too; a later one lives.
    await sleep(1100);
    const fresh = await issue(subject);
    assert.equal((await verifier.verify(fresh.accessToken)).subject, subject);
    assert.equal(await reasonOf(client.verify({ accessToken: fresh.accessToken })), "");
  });

  it("bound tokens: DPoP and certificate bindings refused as the server refuses them", async () => {
    const jkt = b64sha("a DPoP public key");
    const der = Buffer.from("a client certificate DER");
    const thumb = createHash("sha256").update(der).digest("base64url");
    const dpop = await issue("dpop-user", { dpopJkt: jkt });
    const cert = await issue("cert-user", { certThumbprint: thumb });
    const fp = await issue("fp-user", { deviceFingerprint: "device-1" });

    const serverDpop = await reasonOf(client.verify({ accessToken: dpop.accessToken }));
    assert.notEqual(serverDpop, "");
    assert.equal(await reasonOf(verifier.verify(dpop.accessToken)), serverDpop);
    assert.equal(serverDpop, "TOKEN_BINDING_MISMATCH");

    const serverCert = await reasonOf(client.verify({ accessToken: cert.accessToken }));
    assert.equal(serverCert, "TOKEN_BINDING_MISMATCH");
    assert.equal(await reasonOf(verifier.verify(cert.accessToken)), serverCert);
    const wrong = b64sha("another certificate");
    assert.equal(await reasonOf(client.verify({ accessToken: cert.accessToken, certThumbprint: wrong })), "TOKEN_BINDING_MISMATCH");
    assert.equal(await reasonOf(verifier.verify(cert.accessToken, { certThumbprint: wrong })), "TOKEN_BINDING_MISMATCH");
    assert.equal(await reasonOf(client.verify({ accessToken: cert.accessToken, certThumbprint: thumb })), "");
    assert.equal((await verifier.verify(cert.accessToken, { certThumbprint: thumb })).subject, "cert-user");

    const serverFp = await reasonOf(client.verify({ accessToken: fp.accessToken }));
    assert.equal(serverFp, "FINGERPRINT_MISMATCH");
    assert.equal(await reasonOf(verifier.verify(fp.accessToken)), serverFp);
    assert.equal(await reasonOf(verifier.verify(fp.accessToken, { fingerprint: "device-2" })), serverFp);
    assert.equal((await verifier.verify(fp.accessToken, { fingerprint: "device-1" })).subject, "fp-user");
  });

  it("audience and scopes: the server's reasons", async () => {
    const t = await issue("scoped");
    for (const [req, opts] of [
      [{ audience: "other" }, { audience: "other" }],
      [{ audience: "api", requiredScopes: ["admin"] }, { requiredScopes: ["admin"] }],
      [{ audience: "api", requiredScopes: ["read", "write"] }, { requiredScopes: ["read", "write"] }],
    ]) {
      const remote = await reasonOf(client.verify({ accessToken: t.accessToken, ...req }));
      assert.equal(await reasonOf(verifier.verify(t.accessToken, opts)), remote, JSON.stringify(req));
    }
    assert.equal(await reasonOf(verifier.verify(t.accessToken, { audience: "other" })), "AUDIENCE_MISMATCH");
    assert.equal(await reasonOf(verifier.verify(t.accessToken, { requiredScopes: ["admin"] })), "SCOPE_MISSING");
    assert.equal(await reasonOf(verifier.verify("")), "FIELD_INVALID");
    assert.equal(await reasonOf(client.verify({ accessToken: "" })), "FIELD_INVALID");
  });

  it("the verified-token cache answers repeat verifications", async () => {
    const t = await issue("cached");
    const before = verifier.cacheStats();
    for (let i = 0; i < 10; i++) await verifier.verify(t.accessToken);
    const after = verifier.cacheStats();
    assert.ok(after.hits - before.hits >= 9, JSON.stringify({ before, after }));
  });

  it("TesseraClient: TokenError with reason and code from ErrorInfo", async () => {
    const err = await client.refresh({ refreshToken: "nope.nope" }).catch((e) => e);
    assert.ok(err instanceof TokenError);
    assert.equal(err.reason, "REFRESH_TOKEN_INVALID");
    assert.equal(err.code, status.UNAUTHENTICATED);
    const fi = await client.issue({ subject: "" }).catch((e) => e);
    assert.equal(fi.reason, "FIELD_INVALID");
    assert.equal(fi.code, status.INVALID_ARGUMENT);
  });

  it("Express-style middleware on node:http: claims on the request, RFC 6750 challenges", async () => {
    const mw = expressMiddleware(verifier, { realm: "api" });
    const http = createServer((req, res) =>
      mw(req, res, () => {
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ subject: req.tessera.subject }));
      }),
    );
    await new Promise((r) => http.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${http.address().port}/`;
    try {
      const t = await issue("http-user");
      let r = await fetch(url, { headers: { authorization: `Bearer ${t.accessToken}` } });
      assert.equal(r.status, 200);
      assert.deepEqual(await r.json(), { subject: "http-user" });
      r = await fetch(url);
      assert.equal(r.status, 401);
      assert.equal(r.headers.get("www-authenticate"), 'Bearer realm="api"');
      await client.revoke({ token: t.accessToken });
      await eventually("revoked over HTTP", 1000, async () => {
        r = await fetch(url, { headers: { authorization: `Bearer ${t.accessToken}` } });
        return r.status === 401;
      });
      assert.equal(r.headers.get("www-authenticate"), 'Bearer realm="api", error="invalid_token", error_description="TOKEN_REVOKED"');
      assert.equal((await r.json()).reason, "TOKEN_REVOKED");
    } finally {
      http.close();
    }
  });

  it("grpc-js server interceptor: claims for the handler, ErrorInfo reasons on refusal", async () => {
    const srv = new Server({ interceptors: [serverInterceptor(verifier)] });
    srv.addService(pb.TokenAuthorityService, {
      getJwks(call, cb) {
        const c = claimsOf(call);
        cb(null, { jwksJson: JSON.stringify({ subject: c.subject, header: call.metadata.get("x-tessera-subject")[0] }) });
      },
    });
    const port = await new Promise((res, rej) => srv.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    const c = new TesseraClient({ target: `127.0.0.1:${port}` });
    const call = (token) =>
      new Promise((resolve, reject) => {
        const md = new Metadata();
        if (token !== undefined) md.set("authorization", `Bearer ${token}`);
        md.set("x-tessera-subject", "forged");
        c.raw.getJwks({}, md, (e, r) => (e ? reject(TokenError.fromServiceError(e)) : resolve(JSON.parse(r.jwksJson))));
      });
    try {
      const t = await issue("grpc-user");
      assert.deepEqual(await call(t.accessToken), { subject: "grpc-user", header: "grpc-user" });
      const missing = await call(undefined).catch((e) => e);
      assert.equal(missing.code, status.UNAUTHENTICATED);
      const bad = await call(t.accessToken.slice(0, -3) + "AAA").catch((e) => e);
      assert.equal(bad.code, status.UNAUTHENTICATED);
      assert.equal(bad.reason, "TOKEN_SIGNATURE_INVALID");
    } finally {
      c.close();
      srv.forceShutdown();
    }
  });
});

describe("live: a cursor from another deployment", () => {
  let redisA, redisB, serverA, serverB;
  before(async () => {
    [redisA, redisB] = await Promise.all([startRedis(), startRedis()]);
    const dir = tempDir();
    [serverA, serverB] = await Promise.all([
      startTessera({ redisUrl: redisA.url, signingKey: keygen(dir, "a.pem") }),
      startTessera({ redisUrl: redisB.url, signingKey: keygen(dir, "b.pem") }),
    ]);
  });
  after(async () => {
    await Promise.all([serverA?.stop(), serverB?.stop()]);
    await Promise.all([redisA?.stop(), redisB?.stop()]);
  });

  it("CURSOR_INVALID: the verifier drops the cursor, resyncs from a snapshot, and still sees revocations", async () => {
    const a = new TesseraClient({ target: serverA.target });
    const b = new TesseraClient({ target: serverB.target });
    try {
      const before = (await b.issue({ subject: "bob", audience: ["api"] })).tokens;
      await b.revoke({ sessionId: (await b.issue({ subject: "old" })).tokens.sessionId });
      await sleep(5);
      const foreign = (await a.revoke({ sessionId: (await a.issue({ subject: "x" })).tokens.sessionId })).cursor;
      assert.notEqual(foreign, "");
      // The server refuses it...
      const refused = await new Promise((resolve) => {
        const s = b.watchRevocations({ afterCursor: foreign });
        s.on("error", (e) => resolve(TokenError.fromServiceError(e).reason));
        s.on("data", () => {
          s.cancel();
          resolve("data");
        });
      });
      assert.equal(refused, "CURSOR_INVALID");
      // ...and the verifier starts over.
      const v = new LocalVerifier({ target: serverB.target, issuer: ISSUER, audience: "api", resumeCursor: foreign });
      let resyncs = 0;
      v.on("resync", () => resyncs++);
      try {
        await v.start();
        assert.equal(resyncs, 1);
        assert.ok(v.inSync());
        assert.notEqual(v.cursor, foreign);
        assert.equal((await v.verify(before.accessToken)).subject, "bob");
        await b.revoke({ token: before.accessToken });
        const ms = await eventually("revocation after resync", 1000, async () => (await reasonOf(v.verify(before.accessToken))) === "TOKEN_REVOKED", 1);
        assert.ok(ms < 1000);
      } finally {
        v.close();
      }
    } finally {
      a.close();
      b.close();
    }
  });
});

describe("live: server killed, restarted", () => {
  let redis, server, replica, key;
  before(async () => {
    redis = await startRedis();
    key = keygen(tempDir(), "k.pem");
    // A second replica on the same Redis, to revoke while the first is dead.
    [server, replica] = await Promise.all([
      startTessera({ redisUrl: redis.url, signingKey: key }),
      startTessera({ redisUrl: redis.url, signingKey: key }),
    ]);
  });
  after(async () => {
    await Promise.all([server?.stop(), replica?.stop()]);
    await redis?.stop();
  });

  it("SIGKILL: verify fails closed with STORE_UNAVAILABLE, then recovers after a restart", async () => {
    const c = new TesseraClient({ target: server.target });
    const v = new LocalVerifier({ target: server.target, issuer: ISSUER, audience: "api", backoff: { baseMs: 100, capMs: 1000 } });
    let desyncs = 0;
    v.on("desync", () => desyncs++);
    try {
      const t = (await c.issue({ subject: "carol", audience: ["api"] })).tokens;
      const other = (await c.issue({ subject: "dave", audience: ["api"] })).tokens;
      await v.start();
      assert.equal((await v.verify(t.accessToken)).subject, "carol");
      const cursor = v.cursor;
      const { grpcPort, adminPort } = server;
      await server.kill("SIGKILL");
      // Staleness bound: a dropped connection is noticed at once; a silent
      // one within the channel keepalive (10 s + 5 s).
      const ms = await eventually("STORE_UNAVAILABLE", 15_000, async () => (await reasonOf(v.verify(t.accessToken))) === "STORE_UNAVAILABLE");
      assert.ok(ms < 2000, `noticed after ${ms} ms`);
      assert.ok(!v.inSync());
      assert.equal(desyncs, 1);
      // A revocation made (on the other replica) while the verifier's
      // server is down...
      const r = new TesseraClient({ target: replica.target });
      await r.revoke({ sessionId: t.sessionId });
      r.close();
      // ...and it stays closed while the server is down (reconnects keep failing).
      await sleep(1500);
      assert.equal(await reasonOf(v.verify(t.accessToken)), "STORE_UNAVAILABLE");
      // Back on the same ports and Redis: the missed revocation is replayed
      // from the verifier's cursor before it is in sync again.
      server = await startTessera({ redisUrl: redis.url, signingKey: key, grpcPort, adminPort });
      assert.ok(await v.waitInSync(10_000), "in sync again");
      assert.equal(await reasonOf(v.verify(t.accessToken)), "TOKEN_REVOKED");
      assert.equal((await v.verify(other.accessToken)).subject, "dave");
      assert.notEqual(v.cursor, cursor);
    } finally {
      v.close();
      c.close();
    }
  });

  it("a silent server (SIGSTOP): the channel keepalive notices, verify fails closed; SIGCONT recovers", async () => {
    const c = new TesseraClient({ target: replica.target });
    const v = new LocalVerifier({
      target: replica.target,
      issuer: ISSUER,
      audience: "api",
      backoff: { baseMs: 100, capMs: 500 },
      clientOptions: { channelOptions: { "grpc.keepalive_time_ms": 1000, "grpc.keepalive_timeout_ms": 1000 } },
    });
    try {
      const t = (await c.issue({ subject: "erin", audience: ["api"] })).tokens;
      await v.start();
      assert.equal((await v.verify(t.accessToken)).subject, "erin");
      replica.signal("SIGSTOP");
      const ms = await eventually("STORE_UNAVAILABLE", 10_000, async () => (await reasonOf(v.verify(t.accessToken))) === "STORE_UNAVAILABLE", 20);
      assert.ok(ms <= 4000, `noticed after ${ms} ms (keepalive 1 s + 1 s)`);
      replica.signal("SIGCONT");
      assert.ok(await v.waitInSync(10_000), "in sync again");
      assert.equal((await v.verify(t.accessToken)).subject, "erin");
    } finally {
      replica.signal("SIGCONT");
      v.close();
      c.close();
    }
  });
});

describe("live: key rotation (SIGHUP)", () => {
  let redis, server, dir, keyFile;
  before(async () => {
    redis = await startRedis();
    dir = tempDir();
    keyFile = join(dir, "signing.pem");
    copyFileSync(keygen(dir, "a.pem"), keyFile);
    keygen(dir, "b.pem");
    server = await startTessera({ redisUrl: redis.url, signingKey: keyFile });
  });
  after(async () => {
    await server?.stop();
    await redis?.stop();
  });

  it("B signs and A is dropped: B's token verifies (unknown kid, refetch), A's fails TOKEN_SIGNATURE_INVALID", async () => {
    const c = new TesseraClient({ target: server.target });
    const v = new LocalVerifier({ target: server.target, issuer: ISSUER, audience: "api", minRefetchMs: 200 });
    // A second verifier that never sees a B token: its JWK set max-age drops A.
    const aged = new LocalVerifier({ target: server.target, issuer: ISSUER, audience: "api", jwksMaxAgeMs: 500 });
    try {
      await Promise.all([v.start(), aged.start()]);
      const ta = (await c.issue({ subject: "alice", audience: ["api"] })).tokens.accessToken;
      assert.equal((await v.verify(ta)).subject, "alice");
      assert.equal((await aged.verify(ta)).subject, "alice");
      const kidOf = (t) => JSON.parse(Buffer.from(t.split(".")[0], "base64url")).kid;
      copyFileSync(join(dir, "b.pem"), keyFile);
      server.signal("SIGHUP");
      let tb;
      await eventually("B signing", 5000, async () => {
        tb = (await c.issue({ subject: "bob", audience: ["api"] })).tokens.accessToken;
        return kidOf(tb) !== kidOf(ta);
      }, 50);
      await sleep(250); // past minRefetchMs since start
      assert.equal((await v.verify(tb)).subject, "bob");
      assert.equal(await reasonOf(v.verify(ta)), "TOKEN_SIGNATURE_INVALID");
      assert.equal(await reasonOf(c.verify({ accessToken: ta })), "TOKEN_SIGNATURE_INVALID");
      await eventually("A dropped by max-age", 3000, async () => (await reasonOf(aged.verify(ta))) === "TOKEN_SIGNATURE_INVALID", 50);
      assert.equal((await aged.verify(tb)).subject, "bob");
    } finally {
      v.close();
      aged.close();
      c.close();
    }
  });

  it("an unknown kid refetches at most once per cooldown", async () => {
    const v = new LocalVerifier({ target: server.target, issuer: ISSUER, minRefetchMs: 60_000 });
    try {
      await v.start();
      const c = new TesseraClient({ target: server.target });
      const t = (await c.issue({ subject: "zed" })).tokens.accessToken;
      c.close();
      const [h, p, s] = t.split(".");
      const hdr = JSON.parse(Buffer.from(h, "base64url"));
      hdr.kid = "unknown-kid";
      const forged = `${Buffer.from(JSON.stringify(hdr)).toString("base64url")}.${p}.${s}`;
      // Within the cooldown since start: no refetch, refused.
      assert.equal(await reasonOf(v.verify(forged)), "TOKEN_SIGNATURE_INVALID");
      assert.equal((await v.verify(t)).subject, "zed");
    } finally {
      v.close();
    }
  });
});

describe("live: ES256 and RS256 signing keys", () => {
  let redis, servers;
  before(async () => {
    redis = await startRedis();
    const dir = tempDir();
    servers = await Promise.all(
      ["es256", "rs256"].map((alg) => startTessera({ redisUrl: redis.url, signingKey: keygen(dir, `${alg}.pem`, alg) })),
    );
  });
  after(async () => {
    await Promise.all((servers ?? []).map((s) => s.stop()));
    await redis?.stop();
  });

  for (const [i, alg] of ["ES256", "RS256"].entries()) {
    it(`${alg}: the JWK set imports and the server's tokens verify; tampering is refused`, async () => {
      const s = servers[i];
      const c = new TesseraClient({ target: s.target });
      const v = new LocalVerifier({ target: s.target, issuer: ISSUER, audience: "api" });
      try {
        await v.start();
        const t = (await c.issue({ subject: `user-${alg}`, audience: ["api"] })).tokens.accessToken;
        assert.equal(JSON.parse(Buffer.from(t.split(".")[0], "base64url")).alg, alg);
        assert.equal((await v.verify(t)).subject, `user-${alg}`);
        const [h, p, sig] = t.split(".");
        const flipped = Buffer.from(sig, "base64url");
        flipped[5] ^= 1;
        const bad = `${h}.${p}.${flipped.toString("base64url")}`;
        assert.equal(await reasonOf(v.verify(bad)), "TOKEN_SIGNATURE_INVALID");
        assert.equal(await reasonOf(c.verify({ accessToken: bad })), "TOKEN_SIGNATURE_INVALID");
      } finally {
        v.close();
        c.close();
      }
    });
  }
});

describe("live: a verifier of one tenant (--tenants)", () => {
  let redis, server, client;
  const opened = [];
  before(async () => {
    redis = await startRedis();
    const dir = tempDir();
    const entries = ["acme", "globex"].map(
      (name) =>
        `[[tenant]]\nname = "${name}"\nissuer = "https://auth.example.com/t/${name}"\nsigning_key = "${keygen(dir, `${name}.pem`)}"\n`,
    );
    const tenants = join(dir, "tenants.toml");
    writeFileSync(tenants, entries.join("\n"));
    server = await startTessera({ redisUrl: redis.url, signingKey: keygen(dir, "k.pem"), args: ["--tenants", tenants] });
    client = new TesseraClient({ target: server.target });
  });
  after(async () => {
    for (const v of opened) v.close();
    client?.close();
    await server?.stop();
    await redis?.stop();
  });
  const verifierOf = async (tenant) => {
    const v = new LocalVerifier({ target: server.target, issuer: ISSUER, audience: "api", tenant });
    opened.push(v);
    await v.start();
    return v;
  };
  const token = async (tenant, subject) => (await client.issue({ subject, tenant, audience: ["api"] })).tokens.accessToken;

  it("fetches the tenant's keys and issuer and refuses every other tenant's token", async () => {
    const acme = await token("acme", "alice");
    const globex = await token("globex", "bob");
    const initech = await token("initech", "carol");
    const v = await verifierOf("acme");
    const claims = await v.verify(acme);
    assert.equal(claims.tenant, "acme");
    for (const other of [globex, initech]) {
      assert.equal(await reasonOf(v.verify(other)), "TOKEN_SIGNATURE_INVALID");
    }
    const d = await verifierOf("initech");
    assert.equal((await d.verify(initech)).tenant, "initech");
    assert.equal(await reasonOf(d.verify(acme)), "TOKEN_SIGNATURE_INVALID");
    const u = await verifierOf(undefined);
    assert.equal((await u.verify(initech)).subject, "carol");
    assert.equal(await reasonOf(u.verify(acme)), "TOKEN_SIGNATURE_INVALID");
  });
});
