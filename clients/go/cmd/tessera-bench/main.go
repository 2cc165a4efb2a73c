// Command tessera-bench measures the Go LocalVerifier against a live
// Tessera on a Redis it starts (loopback only, bounded count and time):
//
//	(a) one hot token: LocalVerifier.Verify per second on one core
//	    (GOMAXPROCS=1) against the same token's Verify over gRPC per second;
//	(b) revocation propagation: Revoke at a fixed rate for a few seconds;
//	    for each, the time from Revoke returning to the verifier denying the
//	    token (TOKEN_REVOKED): p50, p99, max.
package main

import (
	"context"
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

	propagation(ctx, client, v)
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

type pending struct {
	token    string
	returned time.Time
}

// propagation: Revoke `rate` tokens per second for `seconds`; for each, the
// time from Revoke returning to the local verifier denying it.
func propagation(ctx context.Context, client *tessera.Client, v *tessera.LocalVerifier) {
	n := *rate * *seconds
	tokens := make([]string, n)
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
				tokens[i] = p.AccessToken
			}
		}()
	}
	wg.Wait()
	for _, t := range tokens { // warm: every token verified (and cached) once
		if _, err := v.Verify(t); err != nil {
			log.Fatalf("warm-up: %v", err)
		}
	}

	revoked := make(chan pending, n)
	jobs := make(chan int, n)
	for w := 0; w < 16; w++ {
		go func() {
			for i := range jobs {
				if _, err := client.RevokeToken(ctx, tokens[i]); err != nil {
					log.Fatalf("Revoke: %v", err)
				}
				revoked <- pending{tokens[i], time.Now()}
			}
		}()
	}
	latencies := make([]time.Duration, 0, n)
	missed := 0
	done := make(chan struct{})
	go func() { // the checker: polls every pending token until denied
		defer close(done)
		var open []pending
		for len(latencies)+missed < n {
		drain:
			for {
				select {
				case p := <-revoked:
					open = append(open, p)
				default:
					break drain
				}
			}
			kept := open[:0]
			for _, p := range open {
				_, err := v.Verify(p.token)
				switch {
				case tessera.Reason(err) == tessera.ReasonTokenRevoked:
					latencies = append(latencies, time.Since(p.returned))
				case time.Since(p.returned) > 10*time.Second:
					missed++
				default:
					kept = append(kept, p)
				}
			}
			open = kept
			time.Sleep(50 * time.Microsecond)
		}
	}()
	begin := time.Now()
	interval := time.Second / time.Duration(*rate)
	for i := 0; i < n; i++ {
		if d := time.Until(begin.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		jobs <- i
	}
	close(jobs)
	sent := time.Since(begin)
	<-done
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	q := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[int(p*float64(len(latencies)-1))]
	}
	fmt.Printf("(b) propagation: %d revocations in %.2f s (%.0f/s offered); Revoke returned -> local TOKEN_REVOKED: p50 %v, p99 %v, max %v; missed (>10 s): %d\n",
		n, sent.Seconds(), float64(n)/sent.Seconds(), q(0.50).Round(time.Microsecond), q(0.99).Round(time.Microsecond),
		q(1).Round(time.Microsecond), missed)
}
