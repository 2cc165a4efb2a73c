// Unit tests: the strict JSON reader, the token core, the caches, error
// decoding, the middleware, and the verifier's feed handling against an
// in-process fake server.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { Metadata } from "@grpc/grpc-js";
import {
  LocalVerifier, PublicKeys, RevocationCache, TokenError, VerifiedCache, encodeStatusDetails, errorInfo,
  expressMiddleware, fingerprintHash, httpRefusal, verifyToken, certThumbprint,
} from "@tessera/client";
import { parseStrictJson, JsonNumber, hasDuplicateOf } from "../dist/json.js";
import { b64urlDecode } from "../dist/token.js";
import { subjectKey } from "../dist/cache.js";
import { claims, event, fail, makeKey, marker, mint, now, signRaw, startFake, status } from "./fake.mjs";
import { eventually, reasonOf, sleep } from "./harness.mjs";

const policy = { issuer: "tessera-test", leeway: 30 };

describe("strict JSON", () => {
  it("parses what JSON.parse parses, numbers kept as written", () => {
    const v = parseStrictJson(' {"a": [1, -2.5e3, true, null, "x\\u00e9\\ud83d\\ude00"], "b": {}} ');
    assert.ok(v.a[0] instanceof JsonNumber && v.a[0].isInteger && v.a[0].raw === "1");
    assert.ok(!v.a[1].isInteger);
    assert.equal(v.a[4], "xé😀");
  });
  it("records duplicate keys, last one wins", () => {
    const v = parseStrictJson('{"sub":"a","x":1,"sub":"b"}');
    assert.equal(v.sub, "b");
    assert.ok(hasDuplicateOf(v, ["sub"]));
    assert.ok(!hasDuplicateOf(v, ["x"]));
  });
  for (const bad of [
    "", "{", '{"a":1,}', "[1,]", "01", "1.", ".5", "-", "1e", '"\\x"', '"\\ud800"', '"\\udc00"', '"\\ud800\\u0041"',
    '"a\u0001"', "\ufeff{}", "{} x", "NaN", "Infinity", "{'a':1}", '{"a" 1}', "[" .repeat(129) + "]".repeat(129), "tru",
  ]) {
    it(`refuses ${JSON.stringify(bad).slice(0, 30)}`, () => assert.throws(() => parseStrictJson(bad)));
  }
  it("accepts nesting up to 127 levels, as serde_json", () => {
    parseStrictJson("[".repeat(127) + "]".repeat(127));
    assert.throws(() => parseStrictJson("[".repeat(128) + "]".repeat(128)));
  });
  it("refuses numbers beyond f64's range, as serde_json", () => {
    assert.throws(() => parseStrictJson("1e999"));
    assert.throws(() => parseStrictJson("-" + "9".repeat(400)));
    parseStrictJson("1e308");
  });
  it("base64url: canonical, unpadded, url alphabet only", () => {
    assert.deepEqual(b64urlDecode("QUI"), Buffer.from("AB"));
    assert.equal(b64urlDecode("QUJ"), undefined); // stray trailing bits
    assert.equal(b64urlDecode("QUI="), undefined);
    assert.equal(b64urlDecode("Q+I"), undefined);
    assert.equal(b64urlDecode("QUIDQ"), undefined); // length 1 mod 4
    assert.deepEqual(b64urlDecode(""), Buffer.alloc(0));
  });
});

describe("token core", async () => {
  const keys = { EdDSA: makeKey("EdDSA"), ES256: makeKey("ES256"), RS256: makeKey("RS256") };
  const set = await PublicKeys.fromJwksJson(JSON.stringify({ keys: Object.values(keys).map((k) => k.jwk) }));
  const ed = keys.EdDSA;
  const reason = (token, at = now()) => reasonOf(verifyToken(set, token, at, policy));

  for (const alg of Object.keys(keys)) {
    it(`round trip ${alg}`, async () => {
      const { claims: c } = await verifyToken(set, mint(keys[alg]), now(), policy);
      assert.equal(c.sub, "alice");
      assert.deepEqual(c.aud, ["api"]);
    });
  }
  it("JWK set: unsupported or mismatched keys are skipped, bad key material fails", async () => {
    const s = await PublicKeys.fromJwksJson(
      JSON.stringify({ keys: [{ kid: "h", alg: "HS256", kty: "oct", k: "AAAA" }, { ...ed.jwk, alg: "ES256" }, { ...ed.jwk, kid: undefined }] }),
    );
    assert.equal(s.size, 0);
    await assert.rejects(PublicKeys.fromJwksJson(JSON.stringify({ keys: [{ ...ed.jwk, x: 5 }] })));
    await assert.rejects(PublicKeys.fromJwksJson("[]"));
  });
  it("the key decides the algorithm", async () => {
    assert.equal(await reason(mint(ed, claims(), { alg: "ES256" })), "TOKEN_SIGNATURE_INVALID");
    assert.equal(await reason(mint(keys.ES256, claims(), { kid: ed.kid })), "TOKEN_SIGNATURE_INVALID");
    assert.equal(await reason(mint(ed, claims(), { kid: 5 })), "TOKEN_SIGNATURE_INVALID");
    assert.equal(await reason(mint(ed, claims(), { kid: null })), "TOKEN_SIGNATURE_INVALID");
  });
  it("header: crit, b64 and typ", async () => {
    assert.equal(await reason(mint(ed, claims(), { crit: ["exp"] })), "TOKEN_MALFORMED");
    assert.equal(await reason(mint(ed, claims(), { crit: [] })), "TOKEN_MALFORMED");
    assert.equal(await reason(mint(ed, claims(), { b64: true })), "TOKEN_MALFORMED");
    assert.equal(await reason(mint(ed, claims(), { crit: null, b64: null })), "");
    assert.equal(await reason(mint(ed, claims(), { typ: "AT+JWT" })), "");
    assert.equal(await reason(mint(ed, claims(), { typ: "application/at+jwt" })), "");
    assert.equal(await reason(mint(ed, claims(), { typ: "at+jwt\u212a" })), "TOKEN_MALFORMED");
    assert.equal(await reason(mint(ed, claims(), { typ: "at+jw\u212a" })), "TOKEN_MALFORMED"); // Kelvin sign: not ASCII
    assert.equal(await reason(mint(ed, claims(), { typ: undefined })), "TOKEN_MALFORMED");
    assert.equal(await reason(mint(ed, claims(), { x5c: "not a list" })), "TOKEN_MALFORMED");
    assert.equal(await reason(mint(ed, claims(), { x5c: ["MIIB"], jku: "https://x", jwk: {} })), "");
  });
  it("header: duplicates of read members refused, before the key lookup", async () => {
    const payload = JSON.stringify(claims());
    const h = (extra) => `{"alg":"EdDSA","typ":"at+jwt","kid":"${ed.kid}"${extra}}`;
    assert.equal(await reason(signRaw(ed, h(',"typ":"at+jwt"'), payload)), "TOKEN_MALFORMED");
    assert.equal(await reason(signRaw(ed, h(',"cty":"a","cty":"b"'), payload)), "TOKEN_MALFORMED");
    assert.equal(await reason(signRaw(ed, h(',"foo":1,"foo":2'), payload)), "");
    const unknownKid = `{"alg":"EdDSA","typ":"at+jwt","kid":"nope","cty":"a","cty":"b"}`;
    assert.equal(await reason(signRaw(ed, unknownKid, payload)), "TOKEN_SIGNATURE_INVALID");
  });
  it("payload: duplicate claims refused, duplicate custom claims last-wins (as serde)", async () => {
    const base = JSON.stringify(claims());
    const header = { alg: "EdDSA", typ: "at+jwt", kid: ed.kid };
    assert.equal(await reason(signRaw(ed, header, base.replace("{", '{"sid":"x",'))), "TOKEN_MALFORMED");
    assert.equal(await reason(signRaw(ed, header, base.replace("{", '{"cnf":null,"cnf":null,'))), "TOKEN_MALFORMED");
    const { claims: c } = await verifyToken(set, signRaw(ed, header, base.replace("{", '{"k":1,"k":2,')), now(), policy);
    assert.equal(c.custom.k, 2);
  });
  it("payload: the act chain of an exchanged token is read, not a custom claim", async () => {
    const header = { alg: "EdDSA", typ: "at+jwt", kid: ed.kid };
    const chain = claims(now(), { act: { sub: "b", act: { sub: "a" } } });
    const { claims: c } = await verifyToken(set, signRaw(ed, header, JSON.stringify(chain)), now(), policy);
    assert.deepEqual(c.actors, ["b", "a"]);
    assert.equal(c.custom.act, undefined);
    const { claims: plain } = await verifyToken(set, signRaw(ed, header, JSON.stringify(claims())), now(), policy);
    assert.deepEqual(plain.actors, []);
    assert.equal(await reason(signRaw(ed, header, JSON.stringify(claims(now(), { act: { sub: 5 } })))), "TOKEN_MALFORMED");
  });
  it("payload: claim types as the server's core", async () => {
    const n = now();
    const cases = [
      [{ exp: 1.0 * (n + 600) + 0.5 }, "TOKEN_MALFORMED"],
      [{ iat: "1" }, "TOKEN_MALFORMED"],
      [{ aud: "api" }, ""],
      [{ aud: [] }, ""],
      [{ aud: null }, "TOKEN_MALFORMED"],
      [{ aud: [1] }, "TOKEN_MALFORMED"],
      [{ tid: null }, "TOKEN_MALFORMED"],
      [{ tid: undefined, roles: undefined, scope: undefined }, ""],
      [{ roles: "admin" }, "TOKEN_MALFORMED"],
      [{ scope: ["read"] }, "TOKEN_MALFORMED"],
      [{ cnf: null }, ""],
      [{ cnf: { jkt: null, other: 5 } }, ""],
      [{ cnf: { jkt: 5 } }, "TOKEN_MALFORMED"],
      [{ cnf: "x" }, "TOKEN_MALFORMED"],
      [{ sub: "" }, "TOKEN_MALFORMED"],
      [{ jti: "" }, "TOKEN_MALFORMED"],
      [{ sid: undefined }, "TOKEN_MALFORMED"],
      [{ iss: "other" }, "ISSUER_MISMATCH"],
      [{ iss: "other", exp: "x" }, "TOKEN_MALFORMED"],
      [{ iss: "other", exp: 0 }, "ISSUER_MISMATCH"],
    ];
    for (const [extra, want] of cases) {
      assert.equal(await reason(mint(ed, claims(n, extra))), want, JSON.stringify(extra));
    }
    const raw = (exp) => JSON.stringify(claims(n)).replace(/"exp":\d+/, `"exp":${exp}`);
    const header = { alg: "EdDSA", typ: "at+jwt", kid: ed.kid };
    for (const [exp, want] of [
      ["-0", "TOKEN_MALFORMED"], ["1e10", "TOKEN_MALFORMED"], [`${n + 600}.0`, "TOKEN_MALFORMED"],
      ["9007199254740992", ""], ["9007199254740993", "TOKEN_MALFORMED"], ["-9007199254740992", "TOKEN_EXPIRED"],
      ["-9007199254740993", "TOKEN_MALFORMED"], ["18446744073709551615", "TOKEN_MALFORMED"],
    ]) {
      assert.equal(await reason(signRaw(ed, header, raw(exp))), want, exp);
    }
  });
  it("validity window honours the leeway to the second", async () => {
    const n = 1_800_000_000;
    const t = mint(ed, claims(n, { exp: n + 900, nbf: n, iat: n }));
    assert.equal(await reason(t, n + 930), "");
    assert.equal(await reason(t, n + 931), "TOKEN_EXPIRED");
    assert.equal(await reason(t, n - 30), "");
    assert.equal(await reason(t, n - 31), "TOKEN_NOT_YET_VALID");
    const late = mint(ed, claims(n, { exp: n + 900, nbf: n - 100, iat: n + 31 }));
    assert.equal(await reason(late, n), "TOKEN_NOT_YET_VALID");
  });
  it("signature encoding and structure", async () => {
    const t = mint(ed);
    const [h, p, s] = t.split(".");
    assert.equal(await reason(`${h}.${p}.${s}=`), "TOKEN_MALFORMED");
    assert.equal(await reason(`${h}.${p}.`), "TOKEN_SIGNATURE_INVALID");
    assert.equal(await reason(`${h}.${p}`), "TOKEN_MALFORMED");
    assert.equal(await reason(`${h}.${p}.${s}.`), "TOKEN_MALFORMED");
    assert.equal(await reason(`${h}.${p}x.${s}`), "TOKEN_SIGNATURE_INVALID");
    assert.equal(await reason("x".repeat(8193)), "TOKEN_MALFORMED");
    const es = mint(keys.ES256);
    const [eh, ep, esig] = es.split(".");
    const short = Buffer.from(esig, "base64url").subarray(0, 63).toString("base64url");
    assert.equal(await reason(`${eh}.${ep}.${short}`), "TOKEN_SIGNATURE_INVALID");
    // A payload that is not JSON under a valid signature.
    assert.equal(await reason(signRaw(ed, { alg: "EdDSA", typ: "at+jwt", kid: ed.kid }, "not json")), "TOKEN_MALFORMED");
    assert.equal(await reason(signRaw(ed, { alg: "EdDSA", typ: "at+jwt", kid: ed.kid }, "[1]")), "TOKEN_MALFORMED");
  });
  it("fingerprint hash and certificate thumbprint as the server computes them", () => {
    assert.equal(fingerprintHash(""), "");
    assert.equal(fingerprintHash("dev").length, 43);
    assert.equal(certThumbprint(Buffer.from("abc")), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
  });
});

describe("revocation cache", () => {
  const nowMs = Date.now();
  const base = { tokenId: "", sessionId: "", tenant: "acme", subject: "", issuedBeforeMs: 0, expiresAtMs: nowMs + 60_000 };
  it("is unknown until in sync", () => {
    const c = new RevocationCache();
    assert.equal(c.check("j", "s", "k", 1, nowMs), "unknown");
    c.setInSync(true);
    assert.equal(c.check("j", "s", "k", 1, nowMs), "not-revoked");
  });
  it("token, session and subject horizons", () => {
    const c = new RevocationCache();
    c.setInSync(true);
    c.apply({ ...base, kind: "token", tokenId: "j1" });
    c.apply({ ...base, kind: "session", sessionId: "s1" });
    c.apply({ ...base, kind: "subject", subject: "bob", issuedBeforeMs: 1_000_500 });
    const skey = subjectKey("acme", "bob");
    assert.equal(c.check("j1", "x", "x", 0, nowMs), "revoked");
    assert.equal(c.check("x", "s1", "x", 0, nowMs), "revoked");
    assert.equal(c.check("x", "x", skey, 999, nowMs), "revoked");
    assert.equal(c.check("x", "x", skey, 1000, nowMs), "revoked"); // same second as the cut-off
    assert.equal(c.check("x", "x", skey, 1001, nowMs), "not-revoked");
    assert.equal(c.check("x", "x", subjectKey("other", "bob"), 999, nowMs), "not-revoked");
    // A subject event with the server's key and no raw subject.
    c.apply({ ...base, kind: "subject", subject: "", subjectKey: subjectKey("acme", "dave"), issuedBeforeMs: 1_000_500 });
    assert.equal(c.check("x", "x", subjectKey("acme", "dave"), 999, nowMs), "revoked");
    assert.equal(c.check("x", "x", subjectKey("acme", "dave"), 1001, nowMs), "not-revoked");
    // The server's key, byte for byte (crates/tessera-core revocation.rs has the same case).
    assert.equal(subjectKey("acme", "dave"), "d_0dg3l8kfzk32ilysEoUq");
    // A later cut-off only extends.
    c.apply({ ...base, kind: "subject", subject: "bob", issuedBeforeMs: 500, expiresAtMs: nowMs + 1000 });
    assert.equal(c.check("x", "x", skey, 1000, nowMs), "revoked");
    // Expired entries stop counting and are dropped.
    assert.equal(c.check("j1", "x", "x", 0, nowMs + 60_000), "not-revoked");
    c.expire(nowMs + 60_000);
    assert.equal(c.size, 0);
  });
});

describe("verified-token cache", () => {
  const v = (exp) => ({ claims: { exp }, subjectKey: "k" });
  it("is bounded by entries", () => {
    const c = VerifiedCache.create({ maxEntries: 10, maxBytes: 1 << 20 });
    for (let i = 0; i < 50; i++) c.insert(`t${i}`, v(2e9), "kid", 1);
    assert.equal(c.stats().entries, 10);
    assert.equal(c.stats().evictions, 40);
  });
  it("is bounded by bytes", () => {
    const c = VerifiedCache.create({ maxEntries: 1000, maxBytes: 20_000 });
    for (let i = 0; i < 100; i++) c.insert(`t${i}`.padEnd(1000, "x"), v(2e9), "kid", 1);
    assert.ok(c.stats().bytes <= 20_000);
    assert.ok(c.stats().entries <= 10);
  });
  it("keeps hot tokens through a flood of one-off tokens", () => {
    const c = VerifiedCache.create({ maxEntries: 100, maxBytes: 1 << 20 });
    for (let i = 0; i < 10; i++) {
      c.insert(`hot${i}`, v(2e9), "kid", 1);
      assert.ok(c.get(`hot${i}`, 1));
    }
    for (let i = 0; i < 10_000; i++) c.insert(`cold${i}`, v(2e9), "kid", 1);
    for (let i = 0; i < 10; i++) assert.ok(c.get(`hot${i}`, 1), `hot${i}`);
  });
  it("is cleared by a new key set and swept of expired tokens", () => {
    const c = VerifiedCache.create({ maxEntries: 100, maxBytes: 1 << 20 });
    c.maintain(1, 1000, 30);
    c.insert("a", v(1010), "kid", 1);
    c.insert("b", v(5000), "kid", 1);
    c.maintain(1, 1041, 30); // sweep due: a is past exp + leeway
    assert.equal(c.get("a", 1), undefined);
    assert.ok(c.get("b", 1));
    c.maintain(2, 1042, 30);
    assert.equal(c.get("b", 2), undefined);
    assert.equal(c.stats().keyChanges, 1);
    assert.equal(VerifiedCache.create({ maxEntries: 0, maxBytes: 1 }), undefined);
  });
});

describe("errors", () => {
  it("ErrorInfo round trip through grpc-status-details-bin", () => {
    const md = new Metadata();
    md.set("grpc-status-details-bin", encodeStatusDetails(16, "nope", "TOKEN_REVOKED"));
    assert.deepEqual(errorInfo(md), { reason: "TOKEN_REVOKED", domain: "tessera", metadata: {} });
    const e = TokenError.fromServiceError(Object.assign(new Error("x"), { code: 16, details: "nope", metadata: md }));
    assert.equal(e.reason, "TOKEN_REVOKED");
    assert.equal(e.code, 16);
    const none = TokenError.fromServiceError(Object.assign(new Error("x"), { code: 14, details: "down", metadata: new Metadata() }));
    assert.equal(none.reason, "");
    const junk = new Metadata();
    junk.set("grpc-status-details-bin", Buffer.from([0xff, 0xff, 0xff]));
    assert.equal(errorInfo(junk), undefined);
  });
  it("codes of local reasons", () => {
    assert.equal(new TokenError("STORE_UNAVAILABLE").code, 14);
    assert.equal(new TokenError("SCOPE_MISSING").code, 7);
    assert.equal(new TokenError("FIELD_INVALID").code, 3);
    assert.equal(new TokenError("TOKEN_EXPIRED").code, 16);
  });
});

describe("HTTP middleware (fake verifier)", () => {
  const fakeVerifier = (fn) => ({ verify: async (token) => fn(token) });
  async function serve(mw) {
    const http = createServer((req, res) => mw(req, res, () => res.end(JSON.stringify(req.tessera))));
    await new Promise((r) => http.listen(0, "127.0.0.1", r));
    return { url: `http://127.0.0.1:${http.address().port}/`, close: () => http.close() };
  }
  it("maps reasons to 401/403/503 with RFC 6750 challenges", async () => {
    const s = await serve(
      expressMiddleware(
        fakeVerifier((t) => {
          if (t === "ok") return { subject: "alice" };
          throw new TokenError(t);
        }),
        { requiredScopes: ["read"] },
      ),
    );
    try {
      const get = (auth) => fetch(s.url, { headers: auth ? { authorization: auth } : {} });
      let r = await get("Bearer ok");
      assert.equal(r.status, 200);
      assert.deepEqual(await r.json(), { subject: "alice" });
      r = await get("bearer ok");
      assert.equal(r.status, 200);
      r = await get("Bearer STORE_UNAVAILABLE");
      assert.equal(r.status, 503);
      assert.equal(r.headers.get("retry-after"), "1");
      r = await get("Bearer SCOPE_MISSING");
      assert.equal(r.status, 403);
      assert.equal(r.headers.get("www-authenticate"), 'Bearer error="insufficient_scope", error_description="SCOPE_MISSING", scope="read"');
      r = await get("Bearer TOKEN_EXPIRED");
      assert.equal(r.status, 401);
      assert.equal(r.headers.get("www-authenticate"), 'Bearer error="invalid_token", error_description="TOKEN_EXPIRED"');
      for (const bad of [undefined, "Basic abc", "Bearer", "Bearer a b", "Bearer  "]) {
        r = await get(bad);
        assert.equal(r.status, 401, String(bad));
        assert.equal(r.headers.get("www-authenticate"), "Bearer");
      }
    } finally {
      s.close();
    }
  });
  it("an unexpected failure is a 500 without details", () => {
    assert.equal(httpRefusal(new Error("boom")).status, 500);
  });
});

describe("LocalVerifier feed handling (fake server)", () => {
  const key = makeKey("EdDSA");
  const opts = (target, extra = {}) => ({ target, issuer: "tessera-test", audience: "api", backoff: { baseMs: 20, capMs: 200 }, ...extra });

  it("fails closed until the caught-up marker, then applies events", async () => {
    const fake = await startFake({ keys: [key] });
    let stream;
    fake.state.onWatch = (_req, call) => {
      stream = call;
      call.write(event("c1", "session", { sessionId: "s-dead" }));
    };
    const v = new LocalVerifier(opts(fake.target, { startTimeoutMs: 0 }));
    try {
      await v.start();
      const live = mint(key);
      await eventually("watch", 2000, async () => stream);
      assert.equal(await reasonOf(v.verify(live)), "STORE_UNAVAILABLE");
      stream.write(marker("c1"));
      await eventually("sync", 2000, async () => v.inSync());
      assert.equal((await v.verify(live)).subject, "alice");
      assert.equal(await reasonOf(v.verify(mint(key, claims(now(), { sid: "s-dead" })))), "TOKEN_REVOKED");
      const w = fake.state.watches[0];
      assert.deepEqual([w.afterCursor, w.includeSnapshot, w.markCaughtUp], ["", true, true]);
      stream.write(event("c2", "token", { tokenId: "j1" }));
      await eventually("token event", 2000, async () => (await reasonOf(v.verify(live))) === "TOKEN_REVOKED");
      assert.equal(v.cursor, "c2");
    } finally {
      v.close();
      fake.stop();
    }
  });

  it("a broken stream: out of sync at once, resumed from the last cursor without a snapshot", async () => {
    const fake = await startFake({ keys: [key] });
    fake.state.onWatch = (req, call, i) => {
      if (i === 0) {
        call.write(event("c1", "token", { tokenId: "other" }));
        call.write(marker("c1"));
      } else {
        call.write(event("c2", "token", { tokenId: "j1" }));
        call.write(marker("c2"));
      }
    };
    const v = new LocalVerifier(opts(fake.target));
    try {
      await v.start();
      const t = mint(key);
      assert.equal((await v.verify(t)).subject, "alice");
      fail(fake.state.streams[0], status.UNAVAILABLE, "STORE_UNAVAILABLE");
      await eventually("desync", 2000, async () => !v.inSync());
      await eventually("resync", 3000, async () => v.inSync());
      assert.equal(fake.state.watches[1].afterCursor, "c1");
      assert.equal(fake.state.watches[1].includeSnapshot, false);
      assert.equal(await reasonOf(v.verify(t)), "TOKEN_REVOKED");
    } finally {
      v.close();
      fake.stop();
    }
  });

  it("CURSOR_INVALID: drops the cursor and asks for a snapshot", async () => {
    const fake = await startFake({ keys: [key] });
    fake.state.onWatch = (req, call) => {
      if (req.afterCursor === "foreign") return fail(call, status.INVALID_ARGUMENT, "CURSOR_INVALID");
      call.write(marker("mine"));
    };
    const v = new LocalVerifier(opts(fake.target, { resumeCursor: "foreign" }));
    try {
      await v.start();
      assert.deepEqual(
        fake.state.watches.map((w) => [w.afterCursor, w.includeSnapshot]),
        [["foreign", false], ["", true]],
      );
      assert.equal(v.cursor, "mine");
    } finally {
      v.close();
      fake.stop();
    }
  });

  it("reconnects with capped exponential backoff while refused", async () => {
    const fake = await startFake({ keys: [key] });
    fake.state.onWatch = (_req, call) => fail(call, status.UNAVAILABLE, "STORE_UNAVAILABLE");
    const v = new LocalVerifier(opts(fake.target, { startTimeoutMs: 0, backoff: { baseMs: 50, capMs: 200 } }));
    try {
      await v.start();
      await sleep(1500);
      const n = fake.state.watches.length;
      // Full jitter under ceilings 50, 100, 200, 200, ...: on average ~100 ms
      // apart after the first few; never a hot loop, never a stall.
      assert.ok(n >= 5 && n <= 60, `${n} attempts in 1.5 s`);
      assert.equal(await reasonOf(v.verify(mint(key))), "STORE_UNAVAILABLE");
    } finally {
      v.close();
      fake.stop();
    }
  });

  it("start() fails when the JWK set cannot be fetched, or the feed does not catch up", async () => {
    const fake = await startFake({ keys: [key] });
    fake.state.onWatch = () => {}; // never catches up
    try {
      const v = new LocalVerifier(opts(fake.target, { startTimeoutMs: 300 }));
      assert.equal(await reasonOf(v.start()), "STORE_UNAVAILABLE");
      fake.state.jwks = "not a set";
      const w = new LocalVerifier(opts(fake.target));
      await assert.rejects(w.start());
    } finally {
      fake.stop();
    }
  });

  it("unknown kid: one refetch per cooldown, shared by concurrent calls", async () => {
    const other = makeKey("ES256");
    const fake = await startFake({ keys: [key] });
    fake.state.onWatch = (_r, call) => call.write(marker());
    const v = new LocalVerifier(opts(fake.target, { minRefetchMs: 0 }));
    try {
      await v.start();
      assert.equal(fake.state.jwksCalls, 1);
      const t = mint(other);
      assert.equal(await reasonOf(v.verify(t)), "TOKEN_SIGNATURE_INVALID");
      assert.equal(fake.state.jwksCalls, 2);
      fake.state.jwks = { keys: [key.jwk, other.jwk] };
      const results = await Promise.all([1, 2, 3, 4].map(() => reasonOf(v.verify(t))));
      assert.deepEqual(results, ["", "", "", ""]);
      assert.equal(fake.state.jwksCalls, 3);
      // A known kid with a bad signature never refetches.
      const [h, p] = mint(key).split(".");
      assert.equal(await reasonOf(v.verify(`${h}.${p}.AAAA`)), "TOKEN_SIGNATURE_INVALID");
      assert.equal(fake.state.jwksCalls, 3);
    } finally {
      v.close();
      fake.stop();
    }
  });

  it("DPoP-bound tokens always fail locally; the cache never skips revocation or expiry", async () => {
    const fake = await startFake({ keys: [key] });
    let stream;
    fake.state.onWatch = (_r, call) => {
      stream = call;
      call.write(marker());
    };
    let clockMs = Date.now();
    const v = new LocalVerifier(opts(fake.target, { clock: () => clockMs }));
    try {
      await v.start();
      assert.equal(await reasonOf(v.verify(mint(key, claims(now(), { cnf: { jkt: "x".repeat(43) } })))), "TOKEN_BINDING_MISMATCH");
      const t = mint(key, claims(Math.floor(clockMs / 1000), { jti: "cached" }));
      await v.verify(t);
      await v.verify(t);
      assert.ok(v.cacheStats().hits >= 1);
      clockMs += (600 + 31) * 1000;
      assert.equal(await reasonOf(v.verify(t)), "TOKEN_EXPIRED");
      clockMs -= (600 + 31) * 1000;
      stream.write(event("c9", "token", { tokenId: "cached" }));
      await eventually("revoked while cached", 2000, async () => (await reasonOf(v.verify(t))) === "TOKEN_REVOKED");
    } finally {
      v.close();
      fake.stop();
    }
  });
});

describe("LocalVerifier robustness (fake server)", () => {
  const key = makeKey("EdDSA");
  it("an unknown event kind is not taken for the caught-up marker; a throwing listener breaks nothing", async () => {
    const fake = await startFake({ keys: [key] });
    let stream;
    fake.state.onWatch = (_r, call) => {
      stream = call;
      call.write({ ...event("c1", "token", { tokenId: "x" }), kind: 7 });
    };
    const v = new LocalVerifier({ target: fake.target, issuer: "tessera-test", startTimeoutMs: 0 });
    v.on("warning", () => {
      throw new Error("listener bug");
    });
    v.on("sync", () => {
      throw new Error("listener bug");
    });
    try {
      await v.start();
      await eventually("watch", 2000, async () => stream);
      await sleep(100);
      assert.ok(!v.inSync());
      assert.equal(v.cursor, "c1");
      stream.write(marker());
      await eventually("sync", 2000, async () => v.inSync());
      assert.equal((await v.verify(mint(key))).subject, "alice");
    } finally {
      v.close();
      fake.stop();
    }
  });
});
