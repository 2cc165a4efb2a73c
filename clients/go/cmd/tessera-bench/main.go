// Command tessera-bench measures the Go LocalVerifier against a live
// Tessera on a Redis it starts (loopback only, bounded count and time):
//
//	(a) one hot token: LocalVerifier.Verify per second on one core
//	    (GOMAXPROCS=1) against the same token's Verify over gRPC per second;
//	(b) revocation propagation: sessions revoked at a fixed rate for a few
//	    seconds by the Rust load generator (-revoker, a separate process);
//	    for each, the time from Revoke returning there to this verifier
//	    applying the event (Options.OnRevocation; Verify denies from then
//	    on, checked for every token after): p50, p99, max, both clocks
//	    CLOCK_REALTIME on one host.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	tessera "tessera.dev/client/go"
	pb "tessera.dev/client/go/tesserapb"
)

var (
	bin      = flag.String("bin", envOr("TESSERA_BIN", "/tmp/tessera-stable/tessera"), "tessera binary")
	phase    = flag.Duration("phase", 3*time.Second, "length of each throughput phase")
	rate     = flag.Int("rate", 1000, "revocations per second in (b)")
	seconds  = flag.Int("seconds", 3, "seconds of revocations in (b)")
	inflight = flag.Int("inflight", 16, "concurrent gRPC Verify calls in (a)")
	revoker  = flag.String("revoker", envOr("TESSERA_BENCH_BIN", "tessera-bench"), "the Rust load generator (tessera-bench) that revokes in (b)")
)

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitFor(d time.Duration, cond func() bool) bool {
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

func start(dir string, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	f, err := os.Create(filepath.Join(dir, filepath.Base(name)+".log"))
	if err != nil {
		log.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		log.Fatalf("starting %s: %v", name, err)
	}
	return cmd
}

func main() {
	flag.Parse()
	log.SetFlags(0)
	dir, err := os.MkdirTemp("", "tessera-go-bench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	redisPort := freePort()
	redis := start(dir, "redis-server", "--port", fmt.Sprint(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	defer func() { _ = redis.Process.Kill(); _ = redis.Wait() }()
	key := filepath.Join(dir, "key.pem")
	if out, err := exec.Command(*bin, "keygen", "--out", key).CombinedOutput(); err != nil {
		log.Fatalf("keygen: %v %s", err, out)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort())
	admin := fmt.Sprintf("127.0.0.1:%d", freePort())
	time.Sleep(200 * time.Millisecond) // redis-server binds within milliseconds; the server retries anyway
	server := start(dir, *bin, "serve", "--listen", addr, "--admin-listen", admin, "--signing-key", key,
		"--redis-url", fmt.Sprintf("redis://127.0.0.1:%d", redisPort), "--issue-rate", "off", "--caller-rate", "Issue=off")
	defer func() { _ = server.Process.Kill(); _ = server.Wait() }()
	if !waitFor(30*time.Second, func() bool {
		r, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == 200
	}) {
		log.Fatal("server not ready within 30 s")
	}

	client, err := tessera.NewClient(addr, tessera.ClientOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	v, err := tessera.NewLocalVerifier(ctx, client, tessera.Options{Audience: "api"})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()
	if !v.WaitInSync(ctx) {
		log.Fatal("verifier not in sync")
	}
	pair, err := client.Issue(ctx, &pb.IssueRequest{Subject: "bench", Tenant: "acme", Audience: []string{"api"}, Roles: []string{"reader"}, Scopes: []string{"read", "write"}})
	if err != nil {
		log.Fatal(err)
	}
	token := pair.AccessToken

	fmt.Printf("machine: %d CPUs visible (2 shared cores), %s, token %d bytes\n", runtime.NumCPU(), runtime.Version(), len(token))
	// (a) local, one core.
	prev := runtime.GOMAXPROCS(1)
	local := measure(*phase, 1, func() error { _, err := v.Verify(token); return err })
	runtime.GOMAXPROCS(prev)
	fmt.Printf("(a) local Verify, hot token, cache on, GOMAXPROCS=1: %.0f/s\n", local)
	noCache, err := tessera.NewLocalVerifier(ctx, client, tessera.Options{Audience: "api", CacheEntries: -1})
	if err != nil {
		log.Fatal(err)
	}
	noCache.WaitInSync(ctx)
	runtime.GOMAXPROCS(1)
	full := measure(*phase, 1, func() error { _, err := noCache.Verify(token); return err })
	runtime.GOMAXPROCS(prev)
	noCache.Close()
	fmt.Printf("(a) local Verify, cache off (EdDSA signature every call), GOMAXPROCS=1: %.0f/s\n", full)
	req := &pb.VerifyRequest{AccessToken: token, Audience: "api"}
	grpcSeq := measure(*phase, 1, func() error { _, err := client.Verify(ctx, req); return err })
	fmt.Printf("(a) gRPC Verify, 1 in flight: %.0f/s  (local cached is %.0fx)\n", grpcSeq, local/grpcSeq)
	grpcPar := measure(*phase, *inflight, func() error { _, err := client.Verify(ctx, req); return err })
	fmt.Printf("(a) gRPC Verify, %d in flight: %.0f/s  (local cached is %.0fx)\n", *inflight, grpcPar, local/grpcPar)

	v.Close() // (b) has a verifier of its own
	propagation(ctx, client, addr)
}

// measure runs f from n goroutines for d; answers calls per second.
func measure(d time.Duration, n int, f func() error) float64 {
	var count int64
	var failed atomic.Value
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	begin := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c int64
			for time.Now().Before(deadline) {
				for j := 0; j < 64; j++ {
					if err := f(); err != nil {
						failed.Store(err)
						return
					}
					c++
				}
			}
			atomic.AddInt64(&count, c)
		}()
	}
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		log.Fatalf("call failed: %v", err)
	}
	return float64(count) / time.Since(begin).Seconds()
}

// propagation: issue rate*seconds sessions, then have the project's Rust
// revoker (tessera-bench load --scenario revoke --sessions, a separate
// process) revoke them by id at `rate`/s; it writes when each Revoke
// returned (unix ns), and OnRevocation here records when this verifier
// applied each event (from then on Verify denies). Reports
// max(0, applied - returned): p50, p99, max.
func propagation(ctx context.Context, client *tessera.Client, addr string) {
	n := *rate * *seconds
	pairs := make([]*pb.TokenPair, n)
	var next int64 = -1
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := atomic.AddInt64(&next, 1)
				if i >= int64(n) {
					return
				}
				p, err := client.Issue(ctx, &pb.IssueRequest{Subject: fmt.Sprint("user-", i), Audience: []string{"api"}})
				if err != nil {
					log.Fatalf("Issue: %v", err)
				}
				pairs[i] = p
			}
		}()
	}
	wg.Wait()

	var mu sync.Mutex
	applied := make(map[string]int64, n)
	v, err := tessera.NewLocalVerifier(ctx, client, tessera.Options{Audience: "api", OnRevocation: func(kind, id string) {
		at := time.Now().UnixNano()
		mu.Lock()
		if _, ok := applied[id]; !ok {
			applied[id] = at
		}
		mu.Unlock()
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()
	if !v.WaitInSync(ctx) {
		log.Fatal("verifier not in sync")
	}
	for _, p := range pairs { // warm: every token verified (and cached) once
		if _, err := v.Verify(p.AccessToken); err != nil {
			log.Fatalf("warm-up: %v", err)
		}
	}

	dir, err := os.MkdirTemp("", "tessera-go-prop")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sessions, returnedPath := filepath.Join(dir, "sessions"), filepath.Join(dir, "returned")
	var ids strings.Builder
	for _, p := range pairs {
		ids.WriteString(p.SessionId + "\n")
	}
	if err := os.WriteFile(sessions, []byte(ids.String()), 0o600); err != nil {
		log.Fatal(err)
	}
	cmd := exec.Command(*revoker, "load", "--addr", addr, "--scenario", "revoke", "--sessions", sessions,
		"--returned-out", returnedPath, "--rate", fmt.Sprint(*rate), "--concurrency", "8", "--connections", "2",
		"--duration", fmt.Sprintf("%ds", *seconds+60), "--json")
	cmd.Stderr = os.Stderr
	report, err := cmd.Output()
	if err != nil {
		log.Fatalf("revoker %s: %v", *revoker, err)
	}
	var r struct {
		RequestsOK float64         `json:"requests_ok"`
		Rps        float64         `json:"rps"`
		Duration   float64         `json:"duration_s"`
		Errors     json.RawMessage `json:"errors"`
	}
	if err := json.Unmarshal(report, &r); err != nil {
		log.Fatalf("revoker report: %v", err)
	}
	returned := map[string]int64{}
	text, err := os.ReadFile(returnedPath)
	if err != nil {
		log.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(text)), "\n") {
		var sid string
		var ns int64
		if _, err := fmt.Sscanf(line, "%s %d", &sid, &ns); err != nil {
			log.Fatalf("returned-out line %q: %v", line, err)
		}
		returned[sid] = ns
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		c := 0
		for sid := range returned {
			if _, ok := applied[sid]; ok {
				c++
			}
		}
		return c
	}
	waitFor(5*time.Second, func() bool { return count() == len(returned) })

	mu.Lock()
	var latencies []time.Duration
	early, never := 0, 0
	for sid, ret := range returned {
		at, ok := applied[sid]
		switch {
		case !ok:
			never++
		case at <= ret:
			early++
			latencies = append(latencies, 0)
		default:
			latencies = append(latencies, time.Duration(at-ret))
		}
	}
	mu.Unlock()
	denied := 0
	for _, p := range pairs {
		if _, ok := returned[p.SessionId]; !ok {
			continue
		}
		if _, err := v.Verify(p.AccessToken); tessera.Reason(err) == tessera.ReasonTokenRevoked {
			denied++
		}
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	q := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		i := int(p * float64(len(latencies)))
		if i >= len(latencies) {
			i = len(latencies) - 1
		}
		return latencies[i]
	}
	fmt.Printf("(b) propagation: %d sessions revoked by tessera-bench load (separate process) in %.2f s = %.0f/s, errors %s\n",
		int(r.RequestsOK), r.Duration, r.Rps, r.Errors)
	fmt.Printf("(b) Revoke returned -> OnRevocation applied: p50 %v, p99 %v, max %v; applied before Revoke returned: %d; never applied: %d; denied afterwards: %d/%d\n",
		q(0.50).Round(time.Microsecond), q(0.99).Round(time.Microsecond), q(1).Round(time.Microsecond),
		early, never, denied, len(returned))
}
