package checks

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The scale benchmark: 10,000 TCP_CHECK and 2,000 HTTP_GET real servers on
// loopback at delay_loop 1 s. The listeners run in a child process (this
// test binary re-executed) so the CPU measured is the checker's alone.
//
//	go test -run '^$' -bench BenchmarkChecks12k -benchtime 1x ./checks

const (
	benchTCPAddrs, benchHTTPAddrs, benchPorts = 100, 20, 100
	benchPortBase                             = 21000
)

// benchTargets: HAKEEP_CHECKS_BENCH_DIV=N divides the number of addresses
// (for a quick run on a busy machine).
func benchTargets() (tcp, http []netip.AddrPort) {
	div := 1
	if d, err := strconv.Atoi(os.Getenv("HAKEEP_CHECKS_BENCH_DIV")); err == nil && d > 0 {
		div = d
	}
	for a := 1; a <= benchTCPAddrs/div; a++ {
		for p := 0; p < benchPorts; p++ {
			tcp = append(tcp, netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 10, 0, byte(a)}), uint16(benchPortBase+p)))
		}
	}
	for a := 1; a <= max(1, benchHTTPAddrs/div); a++ {
		for p := 0; p < benchPorts; p++ {
			http = append(http, netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 20, 0, byte(a)}), uint16(benchPortBase+p)))
		}
	}
	return tcp, http
}

func raiseNoFile() {
	lim := syscall.Rlimit{Cur: 1 << 17, Max: 1 << 17}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		var cur syscall.Rlimit
		syscall.Getrlimit(syscall.RLIMIT_NOFILE, &cur)
		cur.Cur = cur.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &cur)
	}
}

// TestBenchListeners is the child process of the benchmark (it does
// nothing in a normal test run).
func TestBenchListeners(t *testing.T) {
	if os.Getenv("HAKEEP_CHECKS_BENCH_CHILD") != "1" {
		t.Skip("benchmark helper; runs only as the benchmark's child process")
	}
	raiseNoFile()
	tcp, http := benchTargets()
	const resp = "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n"
	serve := func(ap netip.AddrPort, isHTTP bool) {
		l, err := net.Listen("tcp", ap.String())
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				if !isHTTP {
					c.Close()
					continue
				}
				go func() {
					defer c.Close()
					br := bufio.NewReader(c)
					for {
						line, err := br.ReadString('\n')
						if err != nil {
							return
						}
						if line == "\r\n" {
							break
						}
					}
					io.WriteString(c, resp)
				}()
			}
		}()
	}
	for _, ap := range tcp {
		serve(ap, false)
	}
	for _, ap := range http {
		serve(ap, true)
	}
	fmt.Println("READY")
	io.Copy(io.Discard, os.Stdin) // until the parent goes away
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkChecks12k(b *testing.B) {
	raiseNoFile()
	child := exec.Command(os.Args[0], "-test.run", "^TestBenchListeners$", "-test.v")
	child.Env = append(os.Environ(), "HAKEEP_CHECKS_BENCH_CHILD=1")
	child.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, _ := child.StdinPipe()
	out, _ := child.StdoutPipe()
	if err := child.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stdin.Close(); child.Process.Kill(); child.Wait() }()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "READY") {
			break
		}
		if strings.HasPrefix(sc.Text(), "ERR") {
			b.Fatal(sc.Text())
		}
	}
	go io.Copy(io.Discard, out)

	tcp, http := benchTargets()
	var specs []Spec
	for _, ap := range tcp {
		c := Checker{Kind: KindTCP, Connect: ap, ConnectTimeout: 5 * time.Second, Retry: 1,
			DelayBeforeRetry: time.Second, DelayLoop: time.Second, Warmup: time.Second}
		specs = append(specs, Spec{VirtualServer: "10.0.0.1:80/TCP", RealServer: ap, Weight: 1, Checkers: []Checker{c}})
	}
	for _, ap := range http {
		c := Checker{Kind: KindHTTP, Connect: ap, ConnectTimeout: 5 * time.Second, Retry: 1,
			DelayBeforeRetry: time.Second, DelayLoop: time.Second, Warmup: time.Second,
			HTTP: HTTPOptions{URLs: []URL{{Path: "/", Digest: md5hex("ok\n")}}}}
		specs = append(specs, Spec{VirtualServer: "10.0.0.2:80/TCP", RealServer: ap, Weight: 1, Checkers: []Checker{c}})
	}
	var msBefore runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&msBefore)
	m := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := m.Start(specs); err != nil {
		b.Fatal(err)
	}
	defer m.Stop()
	time.Sleep(5 * time.Second) // warmup spreads the first round
	m.ResetStats()
	cpu0, t0 := cpuTime(), time.Now()
	time.Sleep(10 * time.Second)
	cpu, wall := cpuTime()-cpu0, time.Since(t0)
	st := m.Stats()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var failures uint64
	down := 0
	for _, s := range m.State() {
		if !s.Up {
			down++
		}
		for _, c := range s.Checkers {
			failures += c.Failures
		}
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	rate := float64(st.Probes) / wall.Seconds()
	b.ReportMetric(rate, "checks/s")
	b.ReportMetric(cpu.Seconds()/(float64(st.Probes)/1000), "cpu-s/1000checks")
	b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cores")
	b.ReportMetric(float64(st.LagP99.Microseconds())/1000, "p99-lag-ms")
	b.ReportMetric(float64(st.LagP50.Microseconds())/1000, "p50-lag-ms")
	b.ReportMetric(float64(ms.HeapInuse-min(ms.HeapInuse, msBefore.HeapInuse))/(1<<20), "heap-MiB")
	b.ReportMetric(float64(ru.Maxrss)/1024, "maxrss-MiB")
	b.Logf("%d probes in %s (%.0f/s), cpu %s (%.2f cores), lag p50 %s p99 %s max %s, failures %d, down %d, goroutines %d",
		st.Probes, wall.Round(time.Millisecond), rate, cpu.Round(time.Millisecond), cpu.Seconds()/wall.Seconds(),
		st.LagP50, st.LagP99, st.LagMax, failures, down, runtime.NumGoroutine())
	if failures > 0 || down > 0 {
		b.Errorf("%d failed probes, %d real servers down: the benchmark measured failures", failures, down)
	}
}

// BenchmarkProbeTCP and BenchmarkProbeHTTP: the cost of one check against
// a loopback listener in this process (client and server side both).
func BenchmarkProbeTCP(b *testing.B) {
	p, _ := NewProber(Checker{Kind: KindTCP, Connect: loopbackListener(b, nil), ConnectTimeout: time.Second, DelayLoop: time.Second}, nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if r := p.Probe(ctx); !r.OK {
			b.Fatal(r)
		}
	}
}

func BenchmarkProbeHTTP(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil || line == "\r\n" {
						break
					}
				}
				io.WriteString(c, "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
			}()
		}
	}()
	p, _ := NewProber(Checker{Kind: KindHTTP, Connect: l.Addr().(*net.TCPAddr).AddrPort(), ConnectTimeout: time.Second,
		DelayLoop: time.Second, HTTP: HTTPOptions{URLs: []URL{{Path: "/", Digest: md5hex("ok\n")}}}}, nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if r := p.Probe(ctx); !r.OK {
			b.Fatal(r)
		}
	}
}
