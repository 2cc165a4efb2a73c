// Test harness: real redis-server and Tessera processes on free loopback
// ports, in a temp dir, stopped afterwards. Nothing here logs a token or key.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export const TESSERA_BIN = process.env.TESSERA_BIN || "/tmp/tessera-stable/tessera";
export const VECTORS_DIR = process.env.TESSERA_VECTORS || "/tmp/tessera-stable/vectors";

const children = new Set();
const dirs = new Set();
process.on("exit", () => {
  for (const c of children) {
    try {
      c.kill("SIGKILL");
    } catch {}
  }
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

export function tempDir(prefix = "tessera-node-") {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.add(d);
  return d;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function track(child) {
  children.add(child);
  child.on("exit", () => children.delete(child));
  return child;
}

async function until(what, timeoutMs, probe) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

function redisPing(port) {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    let buf = "";
    s.setTimeout(500, () => {
      s.destroy();
      resolve(false);
    });
    s.on("error", () => resolve(false));
    s.on("connect", () => s.write("PING\r\n"));
    s.on("data", (d) => {
      buf += d;
      if (buf.includes("\r\n")) {
        s.end();
        resolve(buf.startsWith("+PONG"));
      }
    });
  });
}

/** A redis-server on a free loopback port (no persistence), or an exception. */
export async function startRedis(wrap = []) {
  const dir = tempDir("tessera-redis-");
  const port = await freePort();
  const child = track(
    spawn(
      wrap.length ? wrap[0] : "redis-server",
      [...wrap.slice(1), ...(wrap.length ? ["redis-server"] : []), "--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no", "--protected-mode", "yes"],
      { stdio: ["ignore", openSync(join(dir, "redis.log"), "a"), openSync(join(dir, "redis.log"), "a")] },
    ),
  );
  let exited = false;
  child.on("exit", () => (exited = true));
  await until("redis-server", 10_000, async () => {
    if (exited) throw new Error("redis-server exited at start");
    return redisPing(port);
  });
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode === null && !exited) {
        child.kill("SIGKILL");
        await new Promise((r) => child.once("exit", r));
      }
    },
  };
}

/** `tessera keygen` into a file of `dir`. */
export function keygen(dir, name, alg = "eddsa") {
  const path = join(dir, name);
  execFileSync(TESSERA_BIN, ["keygen", "--alg", alg, "--out", path], { stdio: ["ignore", "ignore", "inherit"] });
  return path;
}

function cleanEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("TESSERA_") && !k.startsWith("OTEL_")) env[k] = v;
  env.RUST_LOG = env.RUST_LOG || "warn";
  return env;
}

/**
 * A Tessera server on free loopback ports. opts: { redisUrl, signingKey,
 * verifyKeys: [], issuer, args: [], grpcPort, adminPort }.
 */
export async function startTessera(opts = {}) {
  const dir = tempDir("tessera-srv-");
  const grpcPort = opts.grpcPort ?? (await freePort());
  const adminPort = opts.adminPort ?? (await freePort());
  const args = [
    "serve",
    "--listen",
    `127.0.0.1:${grpcPort}`,
    "--admin-listen",
    `127.0.0.1:${adminPort}`,
    "--issuer",
    opts.issuer ?? "tessera-test",
  ];
  if (opts.signingKey) args.push("--signing-key", opts.signingKey);
  for (const k of opts.verifyKeys ?? []) args.push("--verify-key", k);
  if (opts.redisUrl) args.push("--redis-url", opts.redisUrl);
  args.push(...(opts.args ?? []));
  const log = join(dir, "tessera.log");
  const fd = openSync(log, "a");
  // opts.wrap: a command prefix, e.g. ["taskset", "-c", "1"] (bench.mjs).
  const [cmd, ...cmdArgs] = [...(opts.wrap ?? []), TESSERA_BIN, ...args];
  const child = track(spawn(cmd, cmdArgs, { stdio: ["ignore", fd, fd], env: cleanEnv() }));
  let exited = false;
  child.on("exit", () => (exited = true));
  try {
    await until("tessera readiness", 20_000, async () => {
      if (exited) throw new Error("tessera exited at start");
      const r = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
      return r.status === 200;
    });
  } catch (e) {
    const tail = existsSync(log) ? readFileSync(log, "utf8").split("\n").slice(-15).join("\n") : "";
    child.kill("SIGKILL");
    throw new Error(`${e.message}\n${tail}`);
  }
  return {
    target: `127.0.0.1:${grpcPort}`,
    grpcPort,
    adminPort,
    child,
    log,
    signal(sig) {
      child.kill(sig);
    },
    async kill(sig = "SIGKILL") {
      if (exited) return;
      child.kill(sig);
      await new Promise((r) => (exited ? r() : child.once("exit", r)));
    },
    stop() {
      return this.kill("SIGKILL");
    },
  };
}

/** Poll `fn` until it returns truthy or `timeoutMs` passes; returns the elapsed ms or throws. */
export async function eventually(what, timeoutMs, fn, stepMs = 5) {
  const t0 = performance.now();
  let last;
  for (;;) {
    try {
      if (await fn()) return performance.now() - t0;
    } catch (e) {
      last = e;
    }
    if (performance.now() - t0 > timeoutMs) throw new Error(`${what} not within ${timeoutMs} ms${last ? ` (last: ${last.message})` : ""}`);
    await sleep(stepMs);
  }
}

/** The reason a promise rejects with ("" when it resolves). */
export async function reasonOf(p) {
  try {
    await p;
    return "";
  } catch (e) {
    return e.reason ?? `not a TokenError: ${e.message}`;
  }
}

export { writeFileSync, readFileSync, join, sleep };
