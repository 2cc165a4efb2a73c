"""Benchmark of the Python LocalVerifier (loopback only, bounded).

(a) one hot token: local verifies per second on one core (verified-token
    cache on, and off), against the same token's Verify over gRPC per
    second (one client thread, sequential; and 32 in flight on grpc.aio);
(b) revocation propagation: Revoke (by session) at ~RATE/s for SECONDS s
    by the project's Rust load generator (`tessera-bench load --scenario
    revoke --sessions`, a separate process; TESSERA_BENCH_BIN, default
    ../../target/release/tessera-bench); for each, the time from Revoke
    returning there to the verifier here applying the event (from then on
    verify denies; checked for every token at the end), both as unix ns
    (CLOCK_REALTIME). Reports p50/p99/max of max(0, applied - returned).

Starts its own redis-server and Tessera (TESSERA_BIN). Usage:
    .venv/bin/python bench.py [--seconds 3] [--rate 1000]
BENCH_SINGLE_THREADED=1: the verifier's channel reads the feed on the feed
thread itself (grpcio's single-threaded unary-stream option), an experiment
(BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "src"))
sys.path.insert(0, str(HERE / "tests"))

import grpc.aio  # noqa: E402
import grpc.experimental  # noqa: E402

from conftest import Stack  # noqa: E402
from tessera_client import LocalVerifier, TesseraClient, TokenError  # noqa: E402
from tessera_client.pb import tessera_pb2 as pb  # noqa: E402
from tessera_client.pb import tessera_pb2_grpc as pb_grpc  # noqa: E402

ISSUER = "tessera-bench"
REVOKER = os.environ.get("TESSERA_BENCH_BIN") or str(
    HERE.parent.parent / "target" / "release" / "tessera-bench")


def rate(fn, seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    deadline = t0 + seconds
    while True:
        for _ in range(200):
            fn()
        n += 200
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - t0)


async def grpc_concurrent(target: str, token: str, seconds: float, inflight: int) -> float:
    async with grpc.aio.insecure_channel(target) as ch:
        stub = pb_grpc.TokenAuthorityStub(ch)
        req = pb.VerifyRequest(access_token=token, audience="api")
        done = 0
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await stub.Verify(req, timeout=5)
                done += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(inflight)))
        return done / (time.perf_counter() - t0)


def revoke_with_rust(target: str, sessions: list, per_s: int, seconds: float, work: Path):
    """The project's Rust load generator, a separate process, revokes each
    session by id at `per_s`; answers its JSON report and, per Revoke that
    returned OK, when it returned (unix ns, CLOCK_REALTIME)."""
    sessions_file, returned_file = work / "sessions", work / "returned"
    sessions_file.write_text("".join(f"{s}\n" for s in sessions))
    out = subprocess.run(
        [REVOKER, "load", "--addr", target, "--scenario", "revoke",
         "--sessions", str(sessions_file), "--returned-out", str(returned_file),
         "--rate", str(per_s), "--concurrency", "8", "--connections", "2",
         "--duration", f"{int(seconds) + 60}s", "--json"],
        check=True, stdout=subprocess.PIPE, timeout=seconds + 120)
    returned = {}
    for line in returned_file.read_text().splitlines():
        sid, ns = line.split(" ")
        returned[sid] = int(ns)
    return json.loads(out.stdout), returned


async def issue_many(target: str, n: int) -> list:
    async with grpc.aio.insecure_channel(target) as ch:
        stub = pb_grpc.TokenAuthorityStub(ch)
        sem = asyncio.Semaphore(64)

        async def one(i: int):
            async with sem:
                r = await stub.Issue(pb.IssueRequest(subject=f"bench-{i}", audience=["api"]),
                                     timeout=10)
                return r.tokens

        return await asyncio.gather(*(one(i) for i in range(n)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rate", type=int, default=1000)
    args = ap.parse_args()
    seconds = min(args.seconds, 10.0)
    per_s = min(args.rate, 5000)

    work = Path(tempfile.mkdtemp(prefix="tessera-bench-"))
    stack = Stack(work)
    try:
        stack.redis()
        server = stack.tessera(issuer=ISSUER, extra=["--caller-rate", "Issue=off"])
        client = TesseraClient(server.target)
        token = client.issue("bench", audience=["api"], scopes=["read"]).access_token

        # (a) one hot token
        os.sched_setaffinity(0, {0})  # this process on one core
        results = {}
        with LocalVerifier(server.target, issuer=ISSUER, audience="api") as v:
            v.verify(token)
            results["local, cache on"] = rate(lambda: v.verify(token), seconds)
            stats = v.cache_stats()
        with LocalVerifier(server.target, issuer=ISSUER, audience="api", cache_size=0) as v:
            results["local, cache off"] = rate(lambda: v.verify(token), seconds)
        results["gRPC Verify, 1 thread sequential"] = rate(
            lambda: client.verify(token, audience="api"), seconds)
        results["gRPC Verify, grpc.aio 32 in flight"] = asyncio.run(
            grpc_concurrent(server.target, token, seconds, 32))
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
        base = results["gRPC Verify, 1 thread sequential"]
        print(f"(a) hot token, {seconds:.0f} s each, client process pinned to one core")
        for name, r in results.items():
            print(f"    {name:38s} {r:10,.0f} /s   x{r / base:6.1f} vs sequential gRPC Verify")
        print(f"    cache stats after the cache-on run: hits={stats['hits']} "
              f"misses={stats['misses']}")

        # (b) propagation
        n = int(per_s * seconds)
        pairs = asyncio.run(issue_many(server.target, n))
        sessions = [p.session_id for p in pairs]
        applied: dict = {}
        extra = {}
        if os.environ.get("BENCH_SINGLE_THREADED") == "1":
            # An experiment (BENCHMARKS.md): the verifier's feed read on its
            # own thread (grpcio's single-threaded unary-stream), not handed
            # over by the channel's spin thread.
            extra["options"] = [(grpc.experimental.ChannelOptions.SingleThreadedUnaryStream, True)]
        with LocalVerifier(server.target, issuer=ISSUER, audience="api", **extra) as v:
            feed = v._core.feed
            original = feed.apply

            def timed_apply(ev) -> None:
                original(ev)
                if ev.session_id:
                    applied.setdefault(ev.session_id, time.time_ns())

            feed.apply = timed_apply  # type: ignore[method-assign]
            report, returned = revoke_with_rust(server.target, sessions, per_s, seconds, work)
            deadline = time.monotonic() + 5
            while any(s not in applied for s in returned) and time.monotonic() < deadline:
                time.sleep(0.01)
            by_sid = {p.session_id: p for p in pairs}
            denied = sum(1 for s in returned
                         if _reason(v, by_sid[s].access_token) == "TOKEN_REVOKED")
        raw = [applied[s] - ns for s, ns in returned.items() if s in applied]
        early = sum(1 for x in raw if x <= 0)
        lat = sorted(max(0, x) / 1e6 for x in raw)
        never = len(returned) - len(raw)

        def q(p: float) -> float:
            return lat[min(len(lat) - 1, int(len(lat) * p))] if lat else 0.0

        print(f"(b) {report['requests_ok']:.0f} sessions revoked by {REVOKER} (separate process) "
              f"in {report['duration_s']:.2f} s = {report['rps']:,.0f}/s, errors {report['errors']}")
        print(f"    Revoke returned -> verifier applied the event: p50 {q(0.5):.3f} ms, "
              f"p90 {q(0.9):.3f} ms, p99 {q(0.99):.3f} ms, max {q(1.0):.3f} ms")
        print(f"    applied before Revoke returned: {early}; never applied: {never}; "
              f"denied afterwards: {denied}/{len(returned)}")
        client.close()
    finally:
        stack.close()
        shutil.rmtree(work, ignore_errors=True)  # the session ids the revoker read


def _reason(v: LocalVerifier, token: str) -> str:
    try:
        v.verify(token)
    except TokenError as e:
        return e.reason
    return "OK"


if __name__ == "__main__":
    main()
