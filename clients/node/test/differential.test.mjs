// Differential test: tokens signed with a live server's own key, with
// headers and payloads of odd shapes, must get the same answer from the
// LocalVerifier as from the server's Verify.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createPrivateKey, sign } from "node:crypto";
import { readFileSync } from "node:fs";
import { LocalVerifier, TesseraClient } from "@tessera/client";
import { keygen, reasonOf, startRedis, startTessera, tempDir } from "./harness.mjs";

const ISSUER = "tessera-test";

describe("differential: LocalVerifier vs the server's Verify", () => {
  let redis, server, client, verifier, key, kid;
  before(async () => {
    redis = await startRedis();
    const pem = keygen(tempDir(), "k.pem");
    key = createPrivateKey(readFileSync(pem));
    server = await startTessera({ redisUrl: redis.url, signingKey: pem });
    client = new TesseraClient({ target: server.target });
    kid = JSON.parse(await client.jwks()).keys[0].kid;
    verifier = new LocalVerifier({ target: server.target, issuer: ISSUER, audience: "api" });
    await verifier.start();
  });
  after(async () => {
    verifier?.close();
    client?.close();
    await server?.stop();
    await redis?.stop();
  });

  const b64 = (x) => Buffer.from(x).toString("base64url");
  const text = (v) => (typeof v === "string" || Buffer.isBuffer(v) ? v : JSON.stringify(v));
  const token = (header, payload) => {
    const msg = `${b64(text(header))}.${b64(text(payload))}`;
    return `${msg}.${sign(null, Buffer.from(msg), key).toString("base64url")}`;
  };

  it("headers and payloads of odd shapes: same reason", async () => {
    const n = Math.floor(Date.now() / 1000);
    const P = (extra = {}) => ({
      iss: ISSUER, sub: "mallory", aud: ["api"], exp: n + 600, nbf: n - 10, iat: n - 10,
      jti: "j-diff", sid: "s-diff", tid: "acme", scope: "read", roles: ["r"], ...extra,
    });
    const H = (extra = {}) => ({ alg: "EdDSA", typ: "at+jwt", kid, ...extra });
    const good = JSON.stringify(P());
    const hgood = JSON.stringify(H());
    const cases = [];
    const add = (name, header, payload) => cases.push([name, token(header, payload)]);
    const omit = (o, k) => {
      const c = { ...o };
      delete c[k];
      return c;
    };

    // header members
    for (const jwk of [{}, { kty: 5 }, { use: 5 }, { alg: 5 }, { kid: 5 }, { key_ops: "sign" }, { key_ops: [1] }, { key_ops: ["sign"] },
      { x5c: "a" }, { x5u: 5 }, [], "str", null, 5, { kty: "EC", crv: "P-256", x: 5, y: 5 }, { alg: "unknown-alg" }, { use: "enc" }, { kid: null }]) {
      add(`jwk ${JSON.stringify(jwk)}`, H({ jwk }), good);
    }
    for (const [k, v] of [["enc", 5], ["enc", "A128GCM"], ["enc", "bogus"], ["zip", 5], ["zip", "DEF"], ["cty", 5], ["cty", null], ["url", 5],
      ["nonce", []], ["x5t", 5], ["x5t#S256", {}], ["x5c", []], ["x5c", ["a", 1]], ["x5c", "a"], ["x5u", null], ["jku", 7],
      ["typ", "at+JWT"], ["typ", "application/AT+JWT"], ["typ", "at+jwt "], ["typ", 5], ["typ", null], ["typ", "jwt"],
      ["crit", null], ["crit", []], ["crit", "x"], ["b64", null], ["b64", true], ["b64", false],
      ["kid", null], ["kid", 5], ["kid", []], ["kid", ""], ["alg", "eddsa"], ["alg", "EdDSA "], ["alg", null], ["alg", 5], ["alg", "ES256"]]) {
      add(`header ${k}=${JSON.stringify(v)}`, H({ [k]: v }), good);
    }
    add("header without typ", omit(H(), "typ"), good);
    add("header without alg", omit(H(), "alg"), good);
    add("header without kid", omit(H(), "kid"), good);
    for (const dup of ['"alg":"EdDSA"', `"kid":"${kid}"`, '"typ":"at+jwt"', '"foo":1,"foo":2', '"cty":"a","cty":"b"', '"jwk":{},"jwk":{}', '"x5c":[],"x5c":[]']) {
      add(`header duplicate ${dup}`, hgood.replace("{", `{${dup},`), good);
    }
    for (const h of [
      ["EdDSA", kid, "at+jwt"], ["EdDSA", "unknown", "at+jwt"], ["EdDSA"], ["EdDSA", kid, "at+jwt", null, null], ["EdDSA", kid, "at+jwt", null, null, 1],
      ["EdDSA", kid, "JWT"], ["EdDSA", kid, "at+jwt", ["exp"]], ["none", kid, "at+jwt"],
    ]) {
      add(`header array ${JSON.stringify(h).slice(0, 40)}`, JSON.stringify(h), good);
    }
    for (const h of ["[]", '"str"', "{}", "\ufeff" + hgood, ` ${hgood}`, `${hgood} `, `${hgood}\n`, hgood.replace('"at+jwt"', '"at+jw\\u0074"'),
      hgood.replace("{", '{"x":"\\ud800",'), hgood.replace("{", '{"x":"\\ud83d\\ude00",'), hgood.replace("{", '{"x":1e999,'), hgood + "x"]) {
      add(`header text ${JSON.stringify(h).slice(0, 40)}`, h, good);
    }

    // payload claims
    for (const [k, v] of [
      ["cnf", []], ["cnf", ["a"]], ["cnf", { jkt: null }], ["cnf", { "dfp#S256": 5 }], ["cnf", { "x5t#S256": null }], ["cnf", {}], ["cnf", 5], ["cnf", null],
      ["cnf", { other: 1 }], ["cnf", [null, null, "x"]], ["cnf", [null, null, null, null]], ["cnf", [5]], ["cnf", [null, "t"]], ["aud", "api"], ["aud", ["x", "api"]], ["aud", []], ["aud", null], ["aud", 5], ["aud", ["api", 5]],
      ["tid", null], ["tid", 5], ["tid", ""], ["roles", null], ["roles", [1]], ["roles", "a"], ["roles", []], ["scope", null], ["scope", 5], ["scope", ["a"]], ["scope", ""],
      ["sub", 5], ["sub", ""], ["sub", null], ["jti", 5], ["jti", ""], ["sid", null], ["sid", ""], ["iss", null], ["iss", ISSUER + " "],
      ["exp", 0], ["exp", -1], ["exp", n + 600.5], ["exp", String(n + 600)], ["exp", true], ["exp", null], ["exp", [n + 600]],
      ["iat", n + 34], ["iat", n + 26], ["nbf", n + 34], ["nbf", n + 26], ["exp", n - 26], ["exp", n - 34],
      ["custom", { a: [1, { b: null }] }], ["__proto__", 1], ["k", "\ud83d\ude00"],
      ["act", null], ["act", 5], ["act", "b"], ["act", {}], ["act", { sub: 5 }], ["act", { sub: "b" }], ["act", { sub: "b", x: [1] }],
      ["act", { sub: "b", act: { sub: "a" } }], ["act", { sub: "b", act: 5 }], ["act", { sub: "b", act: {} }], ["act", { sub: "b", act: null }],
      ["act", ["b"]], ["act", ["b", ["a"]]], ["act", []], ["act", [5]], ["act", ["b", null, null]],
    ]) {
      add(`payload ${k}=${JSON.stringify(v)}`, hgood, JSON.stringify(P()).replace("{", `{${JSON.stringify(k)}:${JSON.stringify(v)},`).replace(new RegExp(`,"${k}":[^,}]*(?=[,}])`), ""));
    }
    for (const k of ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "sid", "tid", "roles", "scope"]) {
      add(`payload without ${k}`, hgood, JSON.stringify(omit(P(), k)));
    }
    const raw = (exp) => good.replace(/"exp":\d+/, `"exp":${exp}`);
    for (const e of ["1e10", `${n + 600}.0`, "-0", "9007199254740992", "9007199254740993", "-9007199254740993", "18446744073709551615",
      "18446744073709551616", "1" + "0".repeat(400), `${n + 600}e0`, "0.0", "-0.0", `0${n + 600}`, `+${n + 600}`]) {
      add(`exp raw ${e.slice(0, 30)}`, hgood, raw(e));
    }
    for (const [name, p] of [
      ["duplicate custom", good.replace("{", '{"k":1,"k":2,')],
      ["duplicate nested custom", good.replace("{", '{"c":{"a":1,"a":2},')],
      ["duplicate sub", good.replace("{", '{"sub":"admin",')],
      ["duplicate exp", good.replace("{", `{"exp":${n + 600},`)],
      ["duplicate cnf member", good.replace("{", '{"cnf":{"jkt":null,"jkt":null},')],
      ["duplicate act", good.replace("{", '{"act":{"sub":"a"},"act":{"sub":"b"},')],
      ["duplicate act member", good.replace("{", '{"act":{"sub":"a","sub":"b"},')],
      ["duplicate unknown act member", good.replace("{", '{"act":{"sub":"a","x":1,"x":2},')],
      ["custom 1e999", good.replace("{", '{"big":1e999,')],
      ["custom -1e999", good.replace("{", '{"big":-1e999,')],
      ["custom 1e308", good.replace("{", '{"big":1e308,')],
      ["custom 400-digit integer", good.replace("{", `{"big":${"9".repeat(400)},`)],
      ["lone surrogate in custom", good.replace("{", '{"x":"\\ud800",')],
      ["lone surrogate in sub", good.replace('"mallory"', '"\\udc00"')],
      ["surrogate pair in sub", good.replace('"mallory"', '"\\ud83d\\ude00"')],
      ["escaped sub", good.replace('"mallory"', '"m\\u0061llory"')],
      ["NUL in sub", good.replace('"mallory"', '"a\\u0000b"')],
      ["BOM", "\ufeff" + good],
      ["whitespace around", ` \n${good}\t `],
      ["trailing garbage", good + "x"],
      ["trailing comma", good.replace(/}$/, ",}")],
      ["array", "[]"],
      ["null", "null"],
      ["string", '"x"'],
      ["comment", good.replace("{", "{/*c*/")],
      ["single quotes", good.replace('"mallory"', "'mallory'")],
      ["invalid UTF-8", Buffer.concat([Buffer.from(good.slice(0, -1)), Buffer.from(',"x":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')])],
      ["UTF-8 overlong", Buffer.concat([Buffer.from(good.slice(0, -1)), Buffer.from(',"x":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')])],
      ["raw control char", good.replace('"mallory"', '"a\tb"')],
      ["depth 126", good.replace("{", `{"d":${"[".repeat(126)}${"]".repeat(126)},`)],
      ["depth 127", good.replace("{", `{"d":${"[".repeat(127)}${"]".repeat(127)},`)],
      ["depth 128", good.replace("{", `{"d":${"[".repeat(128)}${"]".repeat(128)},`)],
      ["depth 200", good.replace("{", `{"d":${"[".repeat(200)}${"]".repeat(200)},`)],
    ]) {
      add(`payload ${name}`, hgood, p);
    }

    // encodings of the three parts
    const good64 = token(hgood, good);
    const [h64, p64, s64] = good64.split(".");
    const signed = (h, p) => `${h}.${p}.${sign(null, Buffer.from(`${h}.${p}`), key).toString("base64url")}`;
    const stray = (x) => {
      // the same bytes with non-zero trailing bits, when the length leaves any
      const last = x[x.length - 1];
      const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
      return x.slice(0, -1) + alphabet[(alphabet.indexOf(last) + 1) % 64];
    };
    const sigBytes = Buffer.from(s64, "base64url");
    for (const [name, t] of [
      ["signature with padding", `${h64}.${p64}.${s64}==`],
      ["signature stray bits", `${h64}.${p64}.${stray(s64)}`],
      ["signature 63 bytes", `${h64}.${p64}.${sigBytes.subarray(0, 63).toString("base64url")}`],
      ["signature 65 bytes", `${h64}.${p64}.${Buffer.concat([sigBytes, Buffer.from([0])]).toString("base64url")}`],
      ["signature standard base64", `${h64}.${p64}.${sigBytes.toString("base64")}`],
      ["payload stray bits, signed", signed(h64, stray(p64))],
      ["payload padded, signed", signed(h64, p64 + "=".repeat((4 - (p64.length % 4)) % 4 || 4))],
      ["header stray bits, signed", signed(stray(h64), p64)],
      ["empty payload, signed", signed(h64, "")],
      ["empty header, signed", signed("", p64)],
      ["newline in token", good64.replace(".", ".\n")],
      ["space after token", `${good64} `],
      ["empty token", ""],
      ["8193 characters", "a".repeat(8193)],
      ["8192 characters", `${good64}${"A".repeat(8192 - good64.length)}`],
      ["five dots", "....."],
    ]) {
      cases.push([name, t]);
    }

    const wrong = [];
    for (const [name, t] of cases) {
      const [local, remote] = [await reasonOf(verifier.verify(t)), await reasonOf(client.verify({ accessToken: t, audience: "api" }))];
      if (local !== remote) wrong.push(`${name}: local ${local || "ok"}, server ${remote || "ok"}`);
    }
    assert.ok(cases.length > 150, `${cases.length} cases`);
    assert.deepEqual(wrong, []);
  });
});
