// The README's quick start, run as written against a live server.
import { after, before, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { keygen, startRedis, startTessera, tempDir } from "./harness.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
let redis, server;
before(async () => {
  redis = await startRedis();
  server = await startTessera({ redisUrl: redis.url, issuer: "quickstart", signingKey: keygen(tempDir(), "k.pem") });
});
after(async () => {
  await server?.stop();
  await redis?.stop();
});

it("the README quick start runs and prints the claims, then TOKEN_REVOKED", async () => {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const m = /## Quick start\s+```js\n([\s\S]*?)```/.exec(readme);
  assert.ok(m, "no js block under Quick start");
  // Inside the package, so that `@tessera/client` resolves to this package.
  mkdirSync(join(root, ".tmp"), { recursive: true });
  const file = join(root, ".tmp", "quickstart.mjs");
  writeFileSync(file, m[1]);
  const { stdout } = await promisify(execFile)(process.execPath, [file], {
    env: { ...process.env, TESSERA_TARGET: server.target, TESSERA_ISSUER: "quickstart" },
    timeout: 30_000,
  });
  assert.equal(stdout, "alice [ 'read' ]\nTOKEN_REVOKED\n");
});
