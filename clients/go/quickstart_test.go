package tessera

// The README's quick start, run as written against a live Tessera.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	pb "tessera.dev/client/go/tesserapb"
)

func readmeGoBlock(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	start := strings.Index(text, "```go\n")
	if start < 0 {
		t.Fatal("README.md has no ```go block")
	}
	rest := text[start+len("```go\n"):]
	end := strings.Index(rest, "```")
	if end < 0 {
		t.Fatal("unterminated ```go block")
	}
	return rest[:end]
}

func TestReadmeQuickStart(t *testing.T) {
	code := readmeGoBlock(t)
	r := startRedis(t)
	s := startTessera(t, "--signing-key", keygen(t, "eddsa"), "--redis-url", r.url) // default issuer "tessera"
	c := s.client(t)
	pair, err := c.Issue(ctx10s(t), &pb.IssueRequest{Subject: "quinn", Audience: []string{"api"}, Scopes: []string{"read"}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	main := filepath.Join(dir, "main.go")
	if err := os.WriteFile(main, []byte(code), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(token string) (string, error) {
		cmd := exec.Command("go", "run", main)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "TESSERA_TARGET="+s.addr, "ACCESS_TOKEN="+token, "LISTEN=")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run(pair.AccessToken)
	if err != nil || !strings.Contains(out, "verified: quinn [read]") {
		t.Fatalf("quick start: %v\n%s", err, out)
	}
	if _, err := c.RevokeToken(ctx10s(t), pair.AccessToken); err != nil {
		t.Fatal(err)
	}
	out, err = run(pair.AccessToken)
	if err == nil || !strings.Contains(out, "refused: TOKEN_REVOKED") {
		t.Fatalf("quick start on a revoked token: %v\n%s", err, out)
	}
}
