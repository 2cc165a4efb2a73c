// Compiled (not run) by test.sh against the emitted .d.ts: the public API
// as a TypeScript consumer sees it.
import { LocalVerifier, TesseraClient, TokenError, expressMiddleware, serverInterceptor } from "@tessera/client";
import type { Claims } from "@tessera/client";

export async function example(target: string): Promise<string> {
  const client = new TesseraClient({ target, apiKey: "k", tls: { ca: "pem" } });
  const { tokens } = await client.issue({ subject: "alice", audience: ["api"] });
  const verifier = new LocalVerifier({ target, apiKey: "k", issuer: "tessera", audience: "api", leeway: 30 });
  await verifier.start();
  try {
    const claims: Claims = await verifier.verify(tokens!.accessToken);
    const { subject, tenant, sessionId, tokenId, roles, scopes, expiresAt } = claims;
    return [subject, tenant, sessionId, tokenId, roles.join(), scopes.join(), expiresAt.toFixed(0)].join(" ");
  } catch (e) {
    if (e instanceof TokenError) return e.reason;
    throw e;
  } finally {
    verifier.close();
    client.close();
    void expressMiddleware(verifier, { requiredScopes: ["read"] });
    void serverInterceptor(verifier);
  }
}
