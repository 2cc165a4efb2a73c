package tessera

import (
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrorDomain is the google.rpc.ErrorInfo domain of every Tessera error.
const ErrorDomain = "tessera"

// Reason codes (google.rpc.ErrorInfo.reason), as the server gives them.
const (
	ReasonTokenMalformed        = "TOKEN_MALFORMED"
	ReasonTokenSignatureInvalid = "TOKEN_SIGNATURE_INVALID"
	ReasonTokenExpired          = "TOKEN_EXPIRED"
	ReasonTokenNotYetValid      = "TOKEN_NOT_YET_VALID"
	ReasonTokenRevoked          = "TOKEN_REVOKED"
	ReasonIssuerMismatch        = "ISSUER_MISMATCH"
	ReasonAudienceMismatch      = "AUDIENCE_MISMATCH"
	ReasonFingerprintMismatch   = "FINGERPRINT_MISMATCH"
	ReasonTokenBindingMismatch  = "TOKEN_BINDING_MISMATCH"
	ReasonDpopProofInvalid      = "DPOP_PROOF_INVALID"
	ReasonDpopProofReplayed     = "DPOP_PROOF_REPLAYED"
	ReasonRefreshTokenInvalid   = "REFRESH_TOKEN_INVALID"
	ReasonRefreshTokenReused    = "REFRESH_TOKEN_REUSED"
	ReasonCallerUnauthenticated = "CALLER_UNAUTHENTICATED"
	ReasonScopeMissing          = "SCOPE_MISSING"
	ReasonCallerNotAllowed      = "CALLER_NOT_ALLOWED"
	ReasonFieldInvalid          = "FIELD_INVALID"
	ReasonCursorInvalid         = "CURSOR_INVALID"
	ReasonRateLimited           = "RATE_LIMITED"
	ReasonStoreUnavailable      = "STORE_UNAVAILABLE"
	ReasonTenantNotAllowed      = "TENANT_NOT_ALLOWED"
	ReasonExchangeNotAllowed    = "EXCHANGE_NOT_ALLOWED"
	ReasonSessionLimit          = "SESSION_LIMIT"
	ReasonInternal              = "INTERNAL"
)

// TokenError is a refusal with the server's reason code: returned by
// LocalVerifier.Verify (with the reason the server's Verify gives in the
// same case) and by Client calls whose status carries a
// google.rpc.ErrorInfo.
type TokenError struct {
	// Reason is the ErrorInfo.reason, e.g. "TOKEN_EXPIRED".
	Reason string
	// Code is the gRPC status code the server uses (or would use) for it.
	Code codes.Code
	// Message is a short English description; never a token or a secret.
	Message string
}

func (e *TokenError) Error() string {
	if e.Message != "" {
		return "tessera: " + e.Reason + ": " + e.Message
	}
	return "tessera: " + e.Reason
}

// GRPCStatus makes a TokenError a gRPC status (with its ErrorInfo), so a
// server handler may return it as it is.
func (e *TokenError) GRPCStatus() *status.Status {
	st := status.New(e.Code, e.Message)
	if withInfo, err := st.WithDetails(&errdetails.ErrorInfo{Reason: e.Reason, Domain: ErrorDomain}); err == nil {
		return withInfo
	}
	return st
}

// Is matches another *TokenError with the same reason:
// errors.Is(err, &tessera.TokenError{Reason: tessera.ReasonTokenRevoked}).
func (e *TokenError) Is(target error) bool {
	t, ok := target.(*TokenError)
	return ok && t.Reason == e.Reason
}

// codeOf is the gRPC code the server answers a reason with.
func codeOf(reason string) codes.Code {
	switch reason {
	case ReasonScopeMissing, ReasonCallerNotAllowed, ReasonTenantNotAllowed, ReasonExchangeNotAllowed:
		return codes.PermissionDenied
	case ReasonFieldInvalid, ReasonCursorInvalid:
		return codes.InvalidArgument
	case ReasonRateLimited, ReasonSessionLimit:
		return codes.ResourceExhausted
	case ReasonStoreUnavailable:
		return codes.Unavailable
	case ReasonInternal:
		return codes.Internal
	}
	return codes.Unauthenticated
}

var messages = map[string]string{
	ReasonTokenMalformed:        "token is malformed",
	ReasonTokenSignatureInvalid: "token signature is invalid",
	ReasonTokenExpired:          "token has expired",
	ReasonTokenNotYetValid:      "token is not yet valid",
	ReasonTokenRevoked:          "token has been revoked",
	ReasonIssuerMismatch:        "token issuer does not match",
	ReasonAudienceMismatch:      "token audience does not match",
	ReasonFingerprintMismatch:   "device fingerprint does not match",
	ReasonTokenBindingMismatch:  "token is bound to another key or certificate",
	ReasonScopeMissing:          "token lacks a required scope",
	ReasonStoreUnavailable:      "local verifier is not in sync with the revocation feed",
	ReasonFieldInvalid:          "access_token must be 1 to 8192 bytes",
}

// Prebuilt refusals: Verify returns these shared values (never modify them).
var refusals = func() map[string]*TokenError {
	m := make(map[string]*TokenError, len(messages))
	for r, msg := range messages {
		m[r] = &TokenError{Reason: r, Code: codeOf(r), Message: msg}
	}
	return m
}()

func refuse(reason string) *TokenError {
	if e, ok := refusals[reason]; ok {
		return e
	}
	return &TokenError{Reason: reason, Code: codeOf(reason)}
}

// Reason is the Tessera reason code of err: a *TokenError's Reason, or the
// ErrorInfo.reason of a gRPC status error from Tessera; "" when it has none.
func Reason(err error) string {
	var te *TokenError
	if errors.As(err, &te) {
		return te.Reason
	}
	if st, ok := status.FromError(err); ok && st != nil {
		return reasonOfStatus(st)
	}
	return ""
}

func reasonOfStatus(st *status.Status) string {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.Reason
		}
	}
	return ""
}

// fromRPC turns a gRPC error carrying an ErrorInfo into a *TokenError;
// other errors are returned as they are.
func fromRPC(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok || st == nil {
		return err
	}
	if r := reasonOfStatus(st); r != "" {
		return &TokenError{Reason: r, Code: st.Code(), Message: st.Message()}
	}
	return err
}
