"""tessera-client: call Tessera and verify its access tokens locally.

- :class:`TesseraClient` / :class:`AsyncTesseraClient`: typed calls over the
  generated stubs, with the API key (``x-tessera-key``) and TLS/mTLS.
- :class:`LocalVerifier` / :class:`AsyncLocalVerifier`: verify access
  tokens in process, exactly as the server's ``Verify`` at default
  consistency, from the JWK set and the revocation feed; fail closed with
  ``STORE_UNAVAILABLE`` while out of sync.
- :class:`TokenError`: every refusal, with the server's reason in ``.reason``.
- :mod:`tessera_client.asgi` (ASGI middleware) and
  :mod:`tessera_client.grpc_interceptor` (gRPC server interceptors).
"""

from ._tokens import cert_thumbprint, fingerprint_hash
from .client import AsyncTesseraClient, TesseraClient
from .errors import TokenError
from .verifier import AsyncLocalVerifier, Claims, LocalVerifier

__all__ = [
    "AsyncLocalVerifier",
    "AsyncTesseraClient",
    "Claims",
    "LocalVerifier",
    "TesseraClient",
    "TokenError",
    "cert_thumbprint",
    "fingerprint_hash",
]
__version__ = "0.1.0"
