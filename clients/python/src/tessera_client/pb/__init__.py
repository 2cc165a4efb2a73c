"""Stubs of ``tessera.v1`` generated from ``proto/tessera/v1/tessera.proto``
by ``scripts/gen_stubs.sh`` (checked in; ``test.sh`` regenerates and diffs
them)."""
