"""The README's quick start, extracted and run as written against a live
Tessera on Redis; and the stubs and package metadata."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_quick_start_runs(shared):
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    env = dict(os.environ, TESSERA_TARGET=shared.target, TESSERA_ISSUER=shared.issuer,
               PYTHONPATH=str(ROOT / "src"))
    env.pop("TESSERA_API_KEY", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[0] == "alice acme ['read']"
    assert len(lines) == 1 or lines[1] == "TOKEN_REVOKED"


def test_public_names():
    import tessera_client as t

    for name in ["TesseraClient", "LocalVerifier", "TokenError", "Claims",
                 "AsyncLocalVerifier", "AsyncTesseraClient"]:
        assert hasattr(t, name), name
    import dataclasses
    import inspect

    fields = [f.name for f in dataclasses.fields(t.Claims)][:7]
    assert fields == ["subject", "tenant", "session_id", "token_id", "roles", "scopes",
                      "expires_at"]
    sig = inspect.signature(t.LocalVerifier)
    params = sig.parameters
    assert list(params)[0] == "target"
    assert params["api_key"].default is None and params["api_key"].kind == params["api_key"].KEYWORD_ONLY
    assert params["issuer"].default == "tessera"
    assert params["audience"].default is None
    assert params["leeway"].default == 30
    assert (ROOT / "src" / "tessera_client" / "py.typed").is_file()
