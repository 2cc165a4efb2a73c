// An in-process fake of Tessera's TokenAuthority (grpc-js, the generated
// service definition) with a local signing key, for unit tests of the
// verifier's feed handling; and token minting helpers.
import { generateKeyPairSync, sign } from "node:crypto";
import { Metadata, Server, ServerCredentials, status } from "@grpc/grpc-js";
import { encodeStatusDetails, pb } from "@tessera/client";

export function makeKey(alg = "EdDSA", kid = `kid-${alg}-${Math.random().toString(36).slice(2)}`) {
  const [type, opts] =
    alg === "EdDSA" ? ["ed25519", {}] : alg === "ES256" ? ["ec", { namedCurve: "P-256" }] : ["rsa", { modulusLength: 2048 }];
  const { publicKey, privateKey } = generateKeyPairSync(type, opts);
  const jwk = { ...publicKey.export({ format: "jwk" }), kid, alg, use: "sig" };
  return { alg, kid, jwk, privateKey };
}

const enc = (v) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");

/** Sign raw header and payload JSON text (strings) or objects. */
export function signRaw(key, header, payload) {
  const msg = `${enc(header)}.${enc(payload)}`;
  const data = Buffer.from(msg);
  const sig =
    key.alg === "EdDSA"
      ? sign(null, data, key.privateKey)
      : key.alg === "ES256"
        ? sign("sha256", data, { key: key.privateKey, dsaEncoding: "ieee-p1363" })
        : sign("sha256", data, key.privateKey);
  return `${msg}.${sig.toString("base64url")}`;
}

export const now = () => Math.floor(Date.now() / 1000);

export function claims(n = now(), extra = {}) {
  return {
    iss: "tessera-test", sub: "alice", aud: ["api"], exp: n + 600, nbf: n - 10, iat: n - 10,
    jti: "j1", sid: "s1", tid: "acme", roles: ["admin"], scope: "read write", ...extra,
  };
}

export function mint(key, payload = claims(), header = {}) {
  return signRaw(key, { alg: key.alg, typ: "at+jwt", kid: key.kid, ...header }, payload);
}

/** A feed script: each watch call gets the next behaviour; calls are recorded. */
export async function startFake({ keys }) {
  const state = {
    jwks: { keys: keys.map((k) => k.jwk) },
    jwksCalls: 0,
    watches: [], // the requests
    streams: [], // live server streams
    onWatch: null, // (req, call, index) => void
  };
  const server = new Server();
  server.addService(pb.TokenAuthorityService, {
    getJwks(_call, cb) {
      state.jwksCalls++;
      cb(null, { jwksJson: JSON.stringify(state.jwks) });
    },
    watchRevocations(call) {
      const i = state.watches.length;
      state.watches.push(call.request);
      state.streams.push(call);
      call.on("cancelled", () => {});
      if (state.onWatch) state.onWatch(call.request, call, i);
    },
  });
  const port = await new Promise((res, rej) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))),
  );
  return { state, target: `127.0.0.1:${port}`, stop: () => server.forceShutdown() };
}

export function fail(call, code, reason, message = "refused") {
  const md = new Metadata();
  md.set("grpc-status-details-bin", encodeStatusDetails(code, message, reason));
  call.emit("error", { code, details: message, metadata: md });
}

export const ts = (ms) => ({ seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 });
export const marker = (cursor = "") => ({ cursor, kind: pb.RevocationKind.REVOCATION_KIND_UNSPECIFIED });
export const event = (cursor, kind, fields = {}) => ({
  cursor,
  kind: pb.RevocationKind[`REVOCATION_KIND_${kind.toUpperCase()}`],
  tokenId: "", sessionId: "", tenant: "", subject: "",
  revokedAt: ts(Date.now()), issuedBefore: undefined, expiresAt: ts(Date.now() + 3_600_000),
  ...fields,
});
export { status };
