// Benchmark of @tessera/client on loopback (bounded counts and durations):
//  (a) one hot token: LocalVerifier.verify per second on one core (cache on
//      and off) vs the same token's Verify over gRPC per second;
//  (b) revocation propagation: sessions revoked by id at ~BENCH_RATE/s for
//      BENCH_SECONDS s by the Rust load generator (a separate process);
//      for each, from Revoke returning there to this verifier applying the
//      event (p50/p99/max of max(0, applied - returned), unix ns both).
// Run: TESSERA_BIN=/path/to/tessera node bench.mjs  (after `npm run build`
// and `cargo build --release -p tessera-bench`)
// Env: BENCH_SECONDS (default 3, at most 10), BENCH_RATE (default 1000, at
// most 5000), TESSERA_BENCH_BIN (default ../../target/release/tessera-bench),
// BENCH_PIN_SERVER=1 (see below).
import { execFileSync, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { LocalVerifier, TesseraClient } from "@tessera/client";
import { keygen, startRedis, startTessera, tempDir } from "./test/harness.mjs";

const SECONDS = Math.min(Number(process.env.BENCH_SECONDS ?? 3), 10);
const RATE = Math.min(Number(process.env.BENCH_RATE ?? 1000), 5000);
const REVOKER = process.env.TESSERA_BENCH_BIN || new URL("../../target/release/tessera-bench", import.meta.url).pathname;

// Unix ns on CLOCK_REALTIME (the revoker's clock) from the monotonic
// hrtime: Date.now() is whole ms, so calibrate at the edge of its tick.
let offsetNs = 0n;
function calibrate() {
  const t0 = Date.now();
  let t;
  while ((t = Date.now()) === t0);
  offsetNs = BigInt(t) * 1_000_000n - process.hrtime.bigint();
}
const realtimeNs = () => process.hrtime.bigint() + offsetNs;
const ISSUER = "bench";

// Redis and Tessera on any CPU (BENCH_PIN_SERVER=1: CPU 1 only); for (a)
// this process (the verifier, and the gRPC client) pinned to CPU 0, after
// they started (children inherit the affinity), and unpinned for (b).
const wrap = process.env.BENCH_PIN_SERVER === "1" ? ["taskset", "-c", "1"] : [];
const redis = await startRedis(wrap);
// As the Go and Python benches: Issue's budgets off (the sessions of (b) are issued in a burst).
const server = await startTessera({
  redisUrl: redis.url,
  issuer: ISSUER,
  signingKey: keygen(tempDir(), "k.pem"),
  wrap,
  args: ["--issue-rate", "off", "--caller-rate", "Issue=off"],
});
const allCpus = `0-${availableParallelism() - 1}`;
const setAffinity = (cpus) => {
  try {
    execFileSync("taskset", ["-pc", cpus, String(process.pid)], { stdio: "ignore" });
  } catch {
    console.log("(taskset unavailable: not pinned)");
  }
};
const unpin = () => setAffinity(allCpus);
setAffinity("0");
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

// (b) revocation propagation, this process unpinned again. The revoker is
// the project's Rust load generator (`tessera-bench load --scenario revoke
// --sessions`, a separate process): it revokes the sessions by id at RATE/s
// and writes when each Revoke returned (unix ns, CLOCK_REALTIME); here, a
// wrapper of the verifier's feed `apply` records when each event was
// applied (from then on verify denies; checked for every token at the end).
unpin();
verifier.close();
uncached.close();
const total = Math.round(RATE * SECONDS);
console.log(`(b) ${total} session revocations at ~${RATE}/s by ${REVOKER}`);
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
const prop = new LocalVerifier({ target: server.target, issuer: ISSUER, audience: "api" });
await prop.start();
for (const s of sessions) await prop.verify(s.accessToken); // all cached and valid

const applied = new Map(); // session id -> unix ns (BigInt) when applied here
{
  const feed = prop["feed"]; // private in TypeScript only: the bench wraps its apply
  const original = feed.apply.bind(feed);
  feed.apply = (ev) => {
    original(ev);
    if (ev.kind === "session" && !applied.has(ev.sessionId)) applied.set(ev.sessionId, realtimeNs());
  };
}
const dir = tempDir("tessera-node-prop-");
const sessionsFile = join(dir, "sessions");
const returnedFile = join(dir, "returned");
writeFileSync(sessionsFile, sessions.map((s) => s.sessionId).join("\n") + "\n");
calibrate();
const report = await new Promise((resolve, reject) => {
  const args = ["load", "--addr", server.target, "--scenario", "revoke", "--sessions", sessionsFile, "--returned-out", returnedFile,
    "--rate", String(RATE), "--concurrency", "8", "--connections", "2", "--duration", `${SECONDS + 60}s`, "--json"];
  const child = spawn(REVOKER, args, { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.on("error", reject);
  child.on("exit", (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`revoker exited ${code}`))));
});
const returned = new Map();
for (const line of readFileSync(returnedFile, "utf8").split("\n")) {
  if (!line) continue;
  const [sid, ns] = line.split(" ");
  returned.set(sid, BigInt(ns));
}
const covered = () => [...returned.keys()].every((sid) => applied.has(sid));
for (const end = Date.now() + 5000; !covered() && Date.now() < end; ) await new Promise((r) => setTimeout(r, 10));
const latencies = [];
let early = 0;
let never = 0;
for (const [sid, ret] of returned) {
  const at = applied.get(sid);
  if (at === undefined) never++;
  else if (at <= ret) {
    early++;
    latencies.push(0);
  } else latencies.push(Number(at - ret) / 1e6);
}
let denied = 0;
for (const s of sessions) {
  if (!returned.has(s.sessionId)) continue;
  try {
    await prop.verify(s.accessToken);
  } catch (e) {
    if (e.reason === "TOKEN_REVOKED") denied++;
  }
}
latencies.sort((a, b) => a - b);
const q = (p) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] : 0).toFixed(3);
console.log(`revoker: ${report.requests_ok} Revoke OK in ${report.duration_s.toFixed(2)} s = ${Math.round(report.rps)}/s, errors ${JSON.stringify(report.errors)}`);
console.log(`Revoke returned -> verifier applied, ms: p50 ${q(0.5)}  p90 ${q(0.9)}  p99 ${q(0.99)}  max ${q(1)}`);
console.log(`applied before Revoke returned: ${early}; never applied: ${never}; denied afterwards: ${denied}/${returned.size}`);

prop.close();
client.close();
await server.stop();
await redis.stop();
