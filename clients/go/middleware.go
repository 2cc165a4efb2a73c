package tessera

import (
	"context"
	"net/http"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

type claimsKey struct{}

// ContextWithClaims returns ctx carrying claims.
func ContextWithClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// ClaimsFromContext answers the claims Middleware or an interceptor put in ctx.
func ClaimsFromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok && c != nil
}

// bearerToken extracts the token of "Bearer <token>" (scheme
// case-insensitive, RFC 6750 §2.1); ok is false without one.
func bearerToken(header string) (string, bool) {
	const scheme = "bearer "
	if len(header) <= len(scheme) || !asciiEqualFold(header[:len(scheme)], scheme) {
		return "", false
	}
	token := strings.TrimLeft(header[len(scheme):], " ")
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", false
	}
	return token, true
}

// MiddlewareOptions configure Middleware.
type MiddlewareOptions struct {
	// Realm of the WWW-Authenticate challenge (default "tessera").
	Realm string
	// RequiredScopes every request's token must carry (403 otherwise).
	RequiredScopes []string
	// Audience overrides the verifier's when not empty.
	Audience string
}

// Middleware verifies the request's "Authorization: Bearer" token with v
// and calls next with the Claims in the request's context
// (ClaimsFromContext). Refusals (RFC 6750 §3):
//
//   - no bearer token: 401, WWW-Authenticate: Bearer realm="tessera";
//   - a bad token: 401, Bearer realm="tessera", error="invalid_token",
//     error_description="<REASON>" (TOKEN_EXPIRED, TOKEN_REVOKED, ...);
//   - an oversized token: 400, error="invalid_request";
//   - a missing scope: 403, error="insufficient_scope", scope="<required>";
//   - STORE_UNAVAILABLE (the verifier is out of sync with the revocation
//     feed, so it cannot tell a revoked token): 503 with Retry-After: 1 and
//     no challenge; the token may be good, the client should retry.
//
// The response body is the reason code; it never echoes the token.
func Middleware(v *LocalVerifier, opts MiddlewareOptions, next http.Handler) http.Handler {
	realm := opts.Realm
	if realm == "" {
		realm = "tessera"
	}
	realm = strings.NewReplacer(`\`, ``, `"`, ``).Replace(realm)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearerToken(r.Header.Get("Authorization"))
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`"`)
			http.Error(w, "bearer token required", http.StatusUnauthorized)
			return
		}
		c, err := v.verify(r.Context(), token, VerifyOptions{Audience: opts.Audience, RequiredScopes: opts.RequiredScopes})
		if err != nil {
			switch err.Reason {
			case ReasonStoreUnavailable:
				w.Header().Set("Retry-After", "1")
				http.Error(w, err.Reason, http.StatusServiceUnavailable)
			case ReasonScopeMissing:
				w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`", error="insufficient_scope", scope="`+
					strings.Join(opts.RequiredScopes, " ")+`"`)
				http.Error(w, err.Reason, http.StatusForbidden)
			case ReasonFieldInvalid:
				w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`", error="invalid_request"`)
				http.Error(w, err.Reason, http.StatusBadRequest)
			default:
				w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`", error="invalid_token", error_description="`+err.Reason+`"`)
				http.Error(w, err.Reason, http.StatusUnauthorized)
			}
			return
		}
		next.ServeHTTP(w, r.WithContext(ContextWithClaims(r.Context(), c.claims.clone())))
	})
}

// InterceptorOptions configure the gRPC server interceptors.
type InterceptorOptions struct {
	// Skip answers true for full method names that need no token (e.g.
	// "/grpc.health.v1.Health/Check").
	Skip func(fullMethod string) bool
	// RequiredScopes every call's token must carry.
	RequiredScopes []string
	// Audience overrides the verifier's when not empty.
	Audience string
}

// authorize reads "authorization: Bearer <token>" metadata and verifies it;
// refusals are gRPC status errors with a tessera ErrorInfo, with the codes
// the server uses (UNAUTHENTICATED, PERMISSION_DENIED for SCOPE_MISSING,
// UNAVAILABLE for STORE_UNAVAILABLE, INVALID_ARGUMENT for FIELD_INVALID).
func authorize(ctx context.Context, v *LocalVerifier, opts InterceptorOptions) (context.Context, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	var token string
	ok := false
	if vals := md.Get("authorization"); len(vals) == 1 {
		token, ok = bearerToken(vals[0])
	}
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "bearer token required")
	}
	c, err := v.verify(ctx, token, VerifyOptions{Audience: opts.Audience, RequiredScopes: opts.RequiredScopes})
	if err != nil {
		return nil, err.GRPCStatus().Err()
	}
	return ContextWithClaims(ctx, c.claims.clone()), nil
}

// UnaryServerInterceptor verifies each unary call's bearer token and puts
// the Claims in the handler's context (ClaimsFromContext).
func UnaryServerInterceptor(v *LocalVerifier, opts InterceptorOptions) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if opts.Skip != nil && opts.Skip(info.FullMethod) {
			return handler(ctx, req)
		}
		ctx, err := authorize(ctx, v, opts)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

type claimsStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s claimsStream) Context() context.Context { return s.ctx }

// StreamServerInterceptor verifies each stream's bearer token once, at its
// start, and puts the Claims in the stream's context.
func StreamServerInterceptor(v *LocalVerifier, opts InterceptorOptions) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if opts.Skip != nil && opts.Skip(info.FullMethod) {
			return handler(srv, ss)
		}
		ctx, err := authorize(ss.Context(), v, opts)
		if err != nil {
			return err
		}
		return handler(srv, claimsStream{ServerStream: ss, ctx: ctx})
	}
}
