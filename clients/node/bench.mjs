// Benchmark of @tessera/client on loopback (bounded counts and durations):
//  (a) one hot token: LocalVerifier.verify per second on one core (cache on
//      and off) vs the same token's Verify over gRPC per second;
//  (b) revocation propagation: from Revoke returning to the verifier
//      denying, at ~BENCH_RATE revocations/s for BENCH_SECONDS seconds
//      (p50/p99/max; pending tokens re-verified every ~1 ms).
// Run: TESSERA_BIN=/path/to/tessera node bench.mjs  (after `npm run build`)
// Env: BENCH_SECONDS (default 3), BENCH_RATE (default 1000), BENCH_PIN_SERVER=1 (see below).
import { execFileSync } from "node:child_process";
import { LocalVerifier, TesseraClient } from "@tessera/client";
import { keygen, startRedis, startTessera, tempDir } from "./test/harness.mjs";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const RATE = Number(process.env.BENCH_RATE ?? 1000);
const ISSUER = "bench";

// This process (the verifier, and the gRPC client) pinned to CPU 0; Redis
// and Tessera on any CPU (BENCH_PIN_SERVER=1: CPU 1 only).
let wrap = [];
try {
  execFileSync("taskset", ["-pc", "0", String(process.pid)], { stdio: "ignore" });
  if (process.env.BENCH_PIN_SERVER === "1") wrap = ["taskset", "-c", "1"];
} catch {
  console.log("(taskset unavailable: not pinned)");
}

const redis = await startRedis(wrap);
const server = await startTessera({ redisUrl: redis.url, issuer: ISSUER, signingKey: keygen(tempDir(), "k.pem"), wrap });
const client = new TesseraClient({ target: server.target });
const verifier = new LocalVerifier({ target: server.target, issuer: ISSUER, audience: "api" });
const uncached = new LocalVerifier({ target: server.target, issuer: ISSUER, audience: "api", cache: false });
await Promise.all([verifier.start(), uncached.start()]);

const { tokens } = await client.issue({ subject: "bench", tenant: "acme", audience: ["api"], roles: ["user"], scopes: ["read", "write"] });
const token = tokens.accessToken;

async function rate(label, seconds, fn, concurrency = 1) {
  for (let i = 0; i < 200; i++) await fn(); // warm up
  let n = 0;
  const end = performance.now() + seconds * 1000;
  const worker = async () => {
    while (performance.now() < end) {
      await fn();
      n++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const r = n / ((performance.now() - t0) / 1000);
  console.log(`${label.padEnd(48)} ${Math.round(r).toLocaleString("en-US").padStart(10)} /s`);
  return r;
}

console.log(`(a) one hot token, ${SECONDS} s each`);
const local = await rate("LocalVerifier.verify, cache on", SECONDS, () => verifier.verify(token));
const localNoCache = await rate("LocalVerifier.verify, cache off (signature)", SECONDS, () => uncached.verify(token));
const grpc1 = await rate("gRPC Verify, 1 in flight", SECONDS, () => client.verify({ accessToken: token, audience: "api" }));
const grpc64 = await rate("gRPC Verify, 64 in flight", SECONDS, () => client.verify({ accessToken: token, audience: "api" }), 64);
const bestGrpc = Math.max(grpc1, grpc64);
console.log(`local (cache on) / best gRPC Verify: ${(local / bestGrpc).toFixed(0)}x; cache off: ${(localNoCache / bestGrpc).toFixed(1)}x`);

// (b) revocation propagation.
const total = Math.round(RATE * SECONDS);
console.log(`(b) ${total} session revocations at ~${RATE}/s`);
const sessions = [];
{
  let next = 0;
  const issueOne = async () => {
    while (next < total) {
      next++;
      for (let attempt = 1; ; attempt++) {
        try {
          sessions.push((await client.issue({ subject: `u${next}`, tenant: "acme", audience: ["api"] })).tokens);
          break;
        } catch (e) {
          if (attempt === 3) throw e; // a starved server: retry twice (every RPC is safe to retry)
        }
      }
    }
  };
  await Promise.all(Array.from({ length: 32 }, issueOne));
}
for (const s of sessions) await verifier.verify(s.accessToken); // all cached and valid

const latencies = [];
const pending = new Set();
let revokeErrors = 0;
const errorReasons = {};
let checking = true;
const checker = async () => {
  while (checking || pending.size > 0) {
    const now = performance.now();
    for (const p of pending) {
      try {
        await verifier.verify(p.token);
      } catch (e) {
        if (e.reason === "TOKEN_REVOKED") {
          latencies.push(Math.max(0, now - p.returned));
          pending.delete(p);
        }
      }
      if (now - p.returned > 10_000) pending.delete(p); // bounded: count as lost
    }
    await new Promise((r) => setTimeout(r, 1)); // ~1 ms resolution, no busy loop
  }
};
const checkerDone = checker();
let alreadyDenied = 0;
const t0 = performance.now();
const inflight = [];
for (let i = 0; i < total; i++) {
  const due = t0 + (i * 1000) / RATE;
  const wait = due - performance.now();
  if (wait > 1) await new Promise((r) => setTimeout(r, wait));
  const s = sessions[i];
  inflight.push(
    client.revoke({ sessionId: s.sessionId }).then(
      async () => {
        const returned = performance.now();
        // Denied already when Revoke returned (the event beat the response)?
        try {
          await verifier.verify(s.accessToken);
          pending.add({ token: s.accessToken, returned });
        } catch (e) {
          if (e.reason === "TOKEN_REVOKED") {
            alreadyDenied++;
            latencies.push(0);
          } else pending.add({ token: s.accessToken, returned });
        }
      },
      (e) => {
        revokeErrors++;
        const k = e.reason || `code ${e.code}`;
        errorReasons[k] = (errorReasons[k] ?? 0) + 1;
      },
    ),
  );
}
await Promise.all(inflight);
const sendSeconds = (performance.now() - t0) / 1000;
checking = false;
await checkerDone;
latencies.sort((a, b) => a - b);
const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))].toFixed(2);
console.log(`sent ${total} in ${sendSeconds.toFixed(2)} s (${Math.round(total / sendSeconds)}/s), errors ${revokeErrors}, lost ${total - revokeErrors - latencies.length}`);
if (revokeErrors) console.log(`failed Revoke calls by reason: ${JSON.stringify(errorReasons)}`);
console.log(`denied already when Revoke returned: ${alreadyDenied}`);
console.log(`propagation ms: p50 ${q(0.5)}  p90 ${q(0.9)}  p99 ${q(0.99)}  max ${latencies[latencies.length - 1].toFixed(2)}`);
console.log(`verifier lag of the last event: ${verifier.lag()} ms`);

verifier.close();
uncached.close();
client.close();
await server.stop();
await redis.stop();
