"""Tessera from Python: issue, verify, refresh with reuse handling, revoke,
and a revocation watcher. Prints one JSON object per step.

Usage: ./generate.sh && python client.py 127.0.0.1:50051 [API_KEY]
"""
import json
import sys
import threading
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0] + "/gen")

import grpc  # noqa: E402
from google.rpc import error_details_pb2  # noqa: E402
from grpc_status import rpc_status  # noqa: E402

from tessera.v1 import tessera_pb2 as pb  # noqa: E402
from tessera.v1 import tessera_pb2_grpc as rpc  # noqa: E402


def reason(err: grpc.RpcError) -> str:
    """The ErrorInfo reason Tessera puts in every error (DESIGN §3)."""
    status = rpc_status.from_call(err)
    for detail in status.details if status else []:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.reason
    return ""


def emit(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


def main():
    addr = sys.argv[1]
    metadata = [("x-tessera-key", sys.argv[2])] if len(sys.argv) > 2 else []
    channel = grpc.insecure_channel(addr)
    stub = rpc.TokenAuthorityStub(channel)

    # A watcher: snapshot, then live events, on its own stream.
    events = []

    def watch():
        try:
            for ev in stub.WatchRevocations(pb.WatchRevocationsRequest(include_snapshot=True), metadata=metadata):
                events.append(ev)
        except grpc.RpcError:
            pass

    threading.Thread(target=watch, daemon=True).start()

    pair = stub.Issue(pb.IssueRequest(subject="alice", tenant="acme", audience=["api"], scopes=["read"]), metadata=metadata).tokens
    emit("issue", session_id=pair.session_id, expires_in=pair.expires_in, token_type=pair.token_type)

    claims = stub.Verify(pb.VerifyRequest(access_token=pair.access_token, audience="api", required_scopes=["read"]), metadata=metadata).claims
    emit("verify", subject=claims.subject, tenant=claims.tenant, scopes=list(claims.scopes))

    rotated = stub.Refresh(pb.RefreshRequest(refresh_token=pair.refresh_token), metadata=metadata).tokens
    emit("refresh", rotated=rotated.refresh_token != pair.refresh_token, session_id=rotated.session_id)

    # Replaying a rotated refresh token (after the grace window) is theft:
    # the session is revoked; the client must sign in again.
    try:
        stub.Refresh(pb.RefreshRequest(refresh_token=pair.refresh_token), metadata=metadata)
        emit("replay", reason="")
    except grpc.RpcError as err:
        emit("replay", code=err.code().name, reason=reason(err))
    try:
        stub.Verify(pb.VerifyRequest(access_token=rotated.access_token, consistency=pb.CONSISTENCY_STRONG), metadata=metadata)
        emit("verify_after_reuse", reason="")
    except grpc.RpcError as err:
        emit("verify_after_reuse", reason=reason(err))

    other = stub.Issue(pb.IssueRequest(subject="bob", tenant="acme"), metadata=metadata).tokens
    cursor = stub.Revoke(pb.RevokeRequest(session_id=other.session_id, reason="python example"), metadata=metadata).cursor
    emit("revoke", cursor_set=bool(cursor))

    # Two revocations were made (the reuse, and bob's session); wait for both.
    deadline = time.monotonic() + 5
    while len(events) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    kinds = sorted({pb.RevocationKind.Name(ev.kind) for ev in events})
    emit("watch", events=len(events), kinds=kinds)


if __name__ == "__main__":
    main()
