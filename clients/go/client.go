// Package tessera calls the Tessera token authority and verifies its
// access tokens locally.
//
//   - Client: the generated stubs (package tesserapb) on one connection,
//     with the x-tessera-key API key and TLS/mTLS; errors carrying a
//     google.rpc.ErrorInfo come back as *TokenError with its Reason.
//   - LocalVerifier: verifies access tokens in process exactly as the
//     server's Verify at default consistency, from the JWK set (GetJwks)
//     and the revocation feed (WatchRevocations); fails closed with
//     STORE_UNAVAILABLE while out of sync.
//   - Middleware (net/http) and UnaryServerInterceptor /
//     StreamServerInterceptor (gRPC servers) put the verified Claims in the
//     request's context.
package tessera

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	pb "tessera.dev/client/go/tesserapb"
)

// APIKeyHeader is the metadata that carries a caller's API key.
const APIKeyHeader = "x-tessera-key"

// ClientOptions configure a Client. The zero value is a plaintext
// connection without an API key (anonymous callers are allowed only on a
// loopback server).
type ClientOptions struct {
	// APIKey is sent as x-tessera-key on every call.
	APIKey string
	// TLS turns on TLS (implied by any of the files below).
	TLS bool
	// CAFile is a PEM bundle of the CAs that sign the server's certificate
	// (default: the system pool).
	CAFile string
	// CertFile and KeyFile are the client certificate and key for mTLS.
	CertFile, KeyFile string
	// ServerName overrides the name checked in the server's certificate.
	ServerName string
	// DialOptions are appended to the client's own.
	DialOptions []grpc.DialOption
}

// Client is a connection to Tessera with typed calls over the generated stubs.
type Client struct {
	conn *grpc.ClientConn
	stub pb.TokenAuthorityClient
}

type apiKeyCreds struct {
	key    string
	secure bool
}

func (c apiKeyCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{APIKeyHeader: c.key}, nil
}

func (c apiKeyCreds) RequireTransportSecurity() bool { return c.secure }

// NewClient connects (lazily) to target, "host:port".
func NewClient(target string, opts ClientOptions) (*Client, error) {
	dial := []grpc.DialOption{
		// Find a dead peer of a long, quiet stream (the revocation feed):
		// a ping every 10 s (grpc-go's minimum) answered within 3 s.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 3 * time.Second, PermitWithoutStream: true}),
	}
	secure := opts.TLS || opts.CAFile != "" || opts.CertFile != "" || opts.KeyFile != ""
	if secure {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: opts.ServerName}
		if opts.CAFile != "" {
			pem, err := os.ReadFile(opts.CAFile)
			if err != nil {
				return nil, fmt.Errorf("tessera: reading the CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, errors.New("tessera: the CA file holds no PEM certificate")
			}
			cfg.RootCAs = pool
		}
		if opts.CertFile != "" || opts.KeyFile != "" {
			cert, err := tls.LoadX509KeyPair(opts.CertFile, opts.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("tessera: loading the client certificate: %w", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		dial = append(dial, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	} else {
		dial = append(dial, grpc.WithInsecure())
	}
	if opts.APIKey != "" {
		dial = append(dial, grpc.WithPerRPCCredentials(apiKeyCreds{key: opts.APIKey, secure: secure}))
	}
	dial = append(dial, opts.DialOptions...)
	conn, err := grpc.Dial(target, dial...)
	if err != nil {
		return nil, fmt.Errorf("tessera: connecting: %w", err)
	}
	return &Client{conn: conn, stub: pb.NewTokenAuthorityClient(conn)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Stub is the generated client, for calls this type does not wrap (its
// errors are plain gRPC status errors; see Reason).
func (c *Client) Stub() pb.TokenAuthorityClient { return c.stub }

// Conn is the underlying connection.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Issue mints a session.
func (c *Client) Issue(ctx context.Context, req *pb.IssueRequest) (*pb.TokenPair, error) {
	resp, err := c.stub.Issue(ctx, req)
	if err != nil {
		return nil, fromRPC(err)
	}
	return resp.GetTokens(), nil
}

// Refresh rotates a refresh token.
func (c *Client) Refresh(ctx context.Context, req *pb.RefreshRequest) (*pb.TokenPair, error) {
	resp, err := c.stub.Refresh(ctx, req)
	if err != nil {
		return nil, fromRPC(err)
	}
	return resp.GetTokens(), nil
}

// Verify asks the server to verify a token.
func (c *Client) Verify(ctx context.Context, req *pb.VerifyRequest) (*pb.VerifyResponse, error) {
	resp, err := c.stub.Verify(ctx, req)
	return resp, fromRPC(err)
}

// Exchange trades a subject token for a narrower one for another audience
// (RFC 8693): the new token names the subject token's user and this caller
// (or the actor token's subject) as the actor. Anything wider than the
// subject token gives is EXCHANGE_NOT_ALLOWED.
func (c *Client) Exchange(ctx context.Context, req *pb.ExchangeRequest) (*pb.ExchangeResponse, error) {
	resp, err := c.stub.Exchange(ctx, req)
	return resp, fromRPC(err)
}

// Revoke revokes a token, a session or a subject; it answers the event's cursor.
func (c *Client) Revoke(ctx context.Context, req *pb.RevokeRequest) (string, error) {
	resp, err := c.stub.Revoke(ctx, req)
	if err != nil {
		return "", fromRPC(err)
	}
	return resp.GetCursor(), nil
}

// RevokeToken, RevokeSession and RevokeSubject are shorthands of Revoke.
func (c *Client) RevokeToken(ctx context.Context, token string) (string, error) {
	return c.Revoke(ctx, &pb.RevokeRequest{Target: &pb.RevokeRequest_Token{Token: token}})
}

// RevokeSession revokes a session and every token of it.
func (c *Client) RevokeSession(ctx context.Context, sessionID string) (string, error) {
	return c.Revoke(ctx, &pb.RevokeRequest{Target: &pb.RevokeRequest_SessionId{SessionId: sessionID}})
}

// RevokeSubject revokes every session of a subject ("log out everywhere").
func (c *Client) RevokeSubject(ctx context.Context, tenant, subject string) (string, error) {
	return c.Revoke(ctx, &pb.RevokeRequest{Target: &pb.RevokeRequest_Subject{Subject: &pb.SubjectRef{Tenant: tenant, Subject: subject}}})
}

// JWKS is the JWK set JSON.
func (c *Client) JWKS(ctx context.Context) (string, error) {
	resp, err := c.JWKSOf(ctx, "")
	if err != nil {
		return "", err
	}
	return resp.GetJwksJson(), nil
}

// JWKSOf calls GetJwks for tenant: its own keys (the server's --tenants),
// else the default ones, with the issuer of the tokens they sign.
func (c *Client) JWKSOf(ctx context.Context, tenant string) (*pb.GetJwksResponse, error) {
	resp, err := c.stub.GetJwks(ctx, &pb.GetJwksRequest{Tenant: tenant})
	if err != nil {
		return nil, fromRPC(err)
	}
	return resp, nil
}

// WatchRevocations opens the revocation feed (errors of Recv are raw gRPC
// status errors; see Reason).
func (c *Client) WatchRevocations(ctx context.Context, req *pb.WatchRevocationsRequest) (pb.TokenAuthority_WatchRevocationsClient, error) {
	s, err := c.stub.WatchRevocations(ctx, req)
	return s, fromRPC(err)
}
