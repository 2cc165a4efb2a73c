package tessera

// Test harness: a real redis-server and a real Tessera on free loopback
// ports, started per test and stopped at its end. A test that cannot start
// them fails (never skips).

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func tesseraBin() string {
	if b := os.Getenv("TESSERA_BIN"); b != "" {
		return b
	}
	return "/tmp/tessera-stable/tessera"
}

func vectorsDir() string {
	if d := os.Getenv("TESSERA_VECTORS"); d != "" {
		return d
	}
	return "/tmp/tessera-stable/vectors"
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("no free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitFor polls cond every 5 ms until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type redisServer struct {
	url string
	cmd *exec.Cmd
}

func startRedis(t testing.TB) *redisServer {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	cmd := exec.Command("redis-server", "--port", fmt.Sprint(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no")
	log, _ := os.Create(filepath.Join(dir, "redis.log"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("cannot start redis-server: %v", err)
	}
	r := &redisServer{url: fmt.Sprintf("redis://127.0.0.1:%d", port), cmd: cmd}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	ok := waitFor(10*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 100*time.Millisecond)
		if err != nil {
			return false
		}
		defer c.Close()
		_, _ = c.Write([]byte("PING\r\n"))
		buf := make([]byte, 16)
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, _ := c.Read(buf)
		return strings.HasPrefix(string(buf[:n]), "+PONG")
	})
	if !ok {
		t.Fatalf("redis-server did not answer PING within 10 s")
	}
	return r
}

type tesseraServer struct {
	t       testing.TB
	addr    string // gRPC host:port
	admin   string // admin host:port
	args    []string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	stopped bool
}

func keygen(t testing.TB, alg string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), alg+".pem")
	out, err := exec.Command(tesseraBin(), "keygen", "--alg", alg, "--out", path).CombinedOutput()
	if err != nil {
		t.Fatalf("tessera keygen: %v: %s", err, out)
	}
	return path
}

// startTessera runs `tessera serve` on free loopback ports with extra args
// and waits for /readyz.
func startTessera(t testing.TB, extra ...string) *tesseraServer {
	t.Helper()
	s := &tesseraServer{t: t}
	s.addr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	s.admin = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	s.args = append([]string{"serve", "--listen", s.addr, "--admin-listen", s.admin}, extra...)
	s.logPath = filepath.Join(t.TempDir(), "tessera.log")
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *tesseraServer) start() {
	t := s.t
	t.Helper()
	log, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tesseraBin(), s.args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("cannot start %s: %v", tesseraBin(), err)
	}
	s.cmd, s.stopped = cmd, false
	s.exited = make(chan struct{})
	go func() { _ = cmd.Wait(); log.Close(); close(s.exited) }()
	if !s.waitReady(30 * time.Second) {
		s.stop()
		out, _ := os.ReadFile(s.logPath)
		t.Fatalf("tessera exited or was not ready within 30 s; log:\n%s", tail(string(out), 3000))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (s *tesseraServer) waitReady(timeout time.Duration) bool {
	client := &http.Client{Timeout: 500 * time.Millisecond}
	exited := false
	ready := waitFor(timeout, func() bool {
		select {
		case <-s.exited:
			exited = true
			return true // stop waiting: it will never be ready
		default:
		}
		resp, err := client.Get("http://" + s.admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return ready && !exited
}

// kill sends SIGKILL and waits for the exit.
func (s *tesseraServer) kill() {
	if s.cmd != nil && !s.stopped {
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.exited
		s.stopped = true
	}
}

func (s *tesseraServer) stop() {
	if s.cmd != nil && !s.stopped {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Signal(syscall.SIGKILL)
			<-s.exited
		}
		s.stopped = true
	}
}

func (s *tesseraServer) sighup() {
	_ = s.cmd.Process.Signal(syscall.SIGHUP)
}

func (s *tesseraServer) client(t testing.TB) *Client {
	t.Helper()
	c, err := NewClient(s.addr, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// verifier starts a LocalVerifier and waits until it is in sync.
func startVerifier(t testing.TB, c *Client, opts Options) *LocalVerifier {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := NewLocalVerifier(ctx, c, opts)
	if err != nil {
		t.Fatalf("NewLocalVerifier: %v", err)
	}
	t.Cleanup(v.Close)
	if !v.WaitInSync(ctx) {
		t.Fatalf("verifier not in sync within 10 s")
	}
	return v
}

func ctx10s(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
