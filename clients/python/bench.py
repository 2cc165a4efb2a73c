"""Benchmark of the Python LocalVerifier (loopback only, bounded).

(a) one hot token: local verifies per second on one core (verified-token
    cache on, and off), against the same token's Verify over gRPC per
    second (one client thread, sequential; and 32 in flight on grpc.aio);
(b) revocation propagation: Revoke (by session) at ~RATE/s for SECONDS s
    from a separate process; for each, the time from Revoke returning there
    to the verifier here applying the event (from then on verify denies;
    checked for every token at the end). Reports p50/p99/max.

Starts its own redis-server and Tessera (TESSERA_BIN). Usage:
    .venv/bin/python bench.py [--seconds 3] [--rate 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "src"))
sys.path.insert(0, str(HERE / "tests"))

import grpc.aio  # noqa: E402

from conftest import Stack  # noqa: E402
from tessera_client import LocalVerifier, TesseraClient, TokenError  # noqa: E402
from tessera_client.pb import tessera_pb2 as pb  # noqa: E402
from tessera_client.pb import tessera_pb2_grpc as pb_grpc  # noqa: E402

ISSUER = "tessera-bench"


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


def revoker(target: str, sessions: list, per_s: int, out) -> None:
    """Child process: revoke each session at `per_s`; report when each Revoke returned."""

    async def main() -> None:
        async with grpc.aio.insecure_channel(target) as ch:
            stub = pb_grpc.TokenAuthorityStub(ch)
            returned = {}

            async def one(sid: str) -> None:
                await stub.Revoke(pb.RevokeRequest(session_id=sid), timeout=10)
                returned[sid] = time.time_ns()

            t0 = time.perf_counter()
            tasks = []
            for i, sid in enumerate(sessions):
                delay = t0 + i / per_s - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(sid)))
            await asyncio.gather(*tasks)
            out.put((returned, time.perf_counter() - t0))

    asyncio.run(main())


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
        with LocalVerifier(server.target, issuer=ISSUER, audience="api") as v:
            feed = v._core.feed
            original = feed.apply

            def timed_apply(ev) -> None:
                original(ev)
                if ev.session_id:
                    applied.setdefault(ev.session_id, time.time_ns())

            feed.apply = timed_apply  # type: ignore[method-assign]
            q: mp.Queue = mp.get_context("spawn").Queue()
            proc = mp.get_context("spawn").Process(
                target=revoker, args=(server.target, sessions, per_s, q))
            proc.start()
            returned, took = q.get(timeout=seconds + 60)
            proc.join(30)
            deadline = time.monotonic() + 5
            while len(applied) < n and time.monotonic() < deadline:
                time.sleep(0.01)
            denied = sum(
                1 for p in pairs if _reason(v, p.access_token) == "TOKEN_REVOKED")
        raw = [(applied[s] - returned[s]) / 1e6 for s in sessions if s in applied]
        early = sum(1 for x in raw if x <= 0)
        lat = sorted(max(0.0, x) for x in raw)
        missing = n - len(lat)
        q99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(f"(b) {n} revocations (by session) in {took:.2f} s = {n / took:,.0f}/s; "
              f"Revoke returned -> verifier applied the event:")
        print(f"    p50 {statistics.median(lat):.2f} ms, p99 {q99:.2f} ms, max {lat[-1]:.2f} ms; "
              f"never applied: {missing}; denied afterwards: {denied}/{n}")
        print(f"    {early / max(1, len(raw)):.0%} of the events were applied here before Revoke "
              f"had returned to the revoking process (counted as 0 ms)")
        client.close()
    finally:
        stack.close()


def _reason(v: LocalVerifier, token: str) -> str:
    try:
        v.verify(token)
    except TokenError as e:
        return e.reason
    return "OK"


if __name__ == "__main__":
    main()
