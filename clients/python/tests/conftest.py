"""Test harness: a real redis-server and real Tessera servers on free
loopback ports, started and stopped here (no fixed sleeps: readiness is
polled). A test that cannot start Redis or Tessera fails, never skips."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import pytest

TESSERA_BIN = os.environ.get("TESSERA_BIN", "/tmp/tessera-stable/tessera")
TESSERA_VECTORS = os.environ.get("TESSERA_VECTORS", "/tmp/tessera-stable/vectors")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred: Callable[[], bool], timeout: float, what: str, step: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Redis:
    def __init__(self, workdir: Path) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise AssertionError("redis-server not found (test.sh installs it)")
        for attempt in range(3):  # a free port may be taken before we bind it
            self.port = free_port()
            self.dir = workdir / f"redis-{self.port}-{attempt}"
            self.dir.mkdir(parents=True)
            self.log = open(self.dir / "redis.log", "wb")
            self.proc = subprocess.Popen(
                [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                 "--save", "", "--appendonly", "no", "--protected-mode", "yes"],
                stdout=self.log, stderr=subprocess.STDOUT,
            )
            try:
                wait_until(self._ping, 10, "redis-server to answer PING")
                return
            except AssertionError:
                self.stop()
                if attempt == 2:
                    raise AssertionError(
                        "redis-server did not start:\n"
                        + (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                    ) from None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def _ping(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError("redis-server exited at start")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def keygen(path: Path, alg: str = "eddsa") -> Path:
    subprocess.run([TESSERA_BIN, "keygen", "--alg", alg, "--out", str(path)], check=True,
                   capture_output=True)
    return path


class Tessera:
    """One `tessera serve` process."""

    def __init__(self, workdir: Path, redis: Optional[Redis], signing_key: Path,
                 issuer: str = "tessera-test", extra: Optional[List[str]] = None,
                 port: Optional[int] = None) -> None:
        self.workdir = workdir
        self.redis = redis
        self.signing_key = signing_key
        self.issuer = issuer
        self.extra = list(extra or [])
        self.proc: Optional[subprocess.Popen] = None
        for attempt in range(3):  # a free port may be taken before the server binds it
            self.port = port or free_port()
            self.admin_port = free_port()
            try:
                self.start()
                return
            except AssertionError as e:
                if attempt == 2 or port is not None or "in use" not in str(e).lower():
                    raise

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        args = [TESSERA_BIN, "serve", "--listen", self.target,
                "--admin-listen", f"127.0.0.1:{self.admin_port}",
                "--issuer", self.issuer, "--signing-key", str(self.signing_key),
                "--log-format", "json"]
        if self.redis is not None:
            args += ["--redis-url", self.redis.url]
        args += self.extra
        self.logpath = self.workdir / f"tessera-{self.port}-{time.monotonic_ns()}.log"
        self.log = open(self.logpath, "wb")
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_until(self.ready, 30, f"tessera on {self.target} to be ready", step=0.05)
        except AssertionError:
            self.log.flush()
            raise AssertionError(
                "tessera did not become ready:\n" + self.logpath.read_text(errors="replace")[-3000:]
            ) from None

    def ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(
                "tessera exited at start:\n" + self.logpath.read_text(errors="replace")[-3000:]
            )
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.admin_port}/readyz", timeout=1
            ) as r:
                return r.status == 200
        except OSError:
            return False

    def sighup(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    def kill(self) -> None:
        """SIGKILL: no goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.log.closed:
            self.log.close()


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="tessera-py-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def tessera_bin() -> str:
    if not os.access(TESSERA_BIN, os.X_OK):
        raise AssertionError(f"TESSERA_BIN {TESSERA_BIN} is not an executable")
    return TESSERA_BIN


class Stack:
    """Starts Redis and Tessera instances for one test; stops them all."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(tempfile.mkdtemp(dir=workdir))
        self.redises: List[Redis] = []
        self.servers: List[Tessera] = []

    def redis(self) -> Redis:
        r = Redis(self.workdir)
        self.redises.append(r)
        return r

    def key(self, name: str = "key.pem", alg: str = "eddsa") -> Path:
        return keygen(self.workdir / name, alg)

    def tessera(self, redis: Optional[Redis] = None, key: Optional[Path] = None,
                **kw: object) -> Tessera:
        if redis is None:
            redis = self.redises[0] if self.redises else self.redis()
        t = Tessera(self.workdir, redis, key or self.key(f"key-{len(self.servers)}.pem"), **kw)  # type: ignore[arg-type]
        self.servers.append(t)
        return t

    def close(self) -> None:
        for t in self.servers:
            t.stop()
        for r in self.redises:
            r.stop()


@pytest.fixture
def stack(workdir: Path, tessera_bin: str) -> Iterator[Stack]:
    s = Stack(workdir)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def shared(workdir: Path, tessera_bin: str) -> Iterator[Tessera]:
    """One Tessera on Redis shared by a module's tests."""
    s = Stack(workdir)
    try:
        s.redis()
        yield s.tessera()
    finally:
        s.close()
