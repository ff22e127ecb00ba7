package cluster_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hakeep/api"
	"hakeep/internal/lab"
	"hakeep/internal/lab/labtest"
	"hakeep/internal/vmtest"
	"hakeep/lvs"
)

// pushedVS is the service the push adds: NAT to two addresses on the lab
// subnet (routable, so the kernel takes them), no checkers, so it is
// programmed as soon as the configuration is applied.
const pushedVS = `virtual_server 10.99.0.100 80 {
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 10.99.0.201 80 {
        weight 1
    }
    real_server 10.99.0.202 80 {
        weight 2
    }
}
`

const (
	pushedKey   = "TCP 10.99.0.100:80"
	pushedShape = pushedKey + " | 10.99.0.201:80 w1, 10.99.0.202:80 w2"
	// statusLimit is how long a director may take to answer a status
	// call: a wedged one never answers, so the bound only has to end the
	// wait. It is generous because the VM runs on TCG, on a shared
	// machine: 1 s was missed under load with nothing wedged.
	statusLimit = 10 * time.Second
)

// kernelShape reads the pushed service from a director's kernel: its
// shape, or "" when the service is not there.
func kernelShape(k *lvs.Kernel) (string, error) {
	tab, err := k.Dump()
	if err != nil {
		return "", err
	}
	for key, s := range tab {
		if key.String() != pushedKey {
			continue
		}
		var ds []string
		for _, d := range s.SortedDests() {
			ds = append(ds, fmt.Sprintf("%s w%d", d.Key(), d.Weight))
		}
		return pushedKey + " | " + strings.Join(ds, ", "), nil
	}
	return "", nil
}

// apiStatus asks host's daemon for its status through the API client (what
// hactl uses), with a deadline of limit.
func apiStatus(l *lab.Lab, host string, limit time.Duration) (api.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	st, err := api.NewClient(sock(l, host)).Status(ctx)
	if err != nil {
		return st, fmt.Errorf("%s: status, answer wanted within %s: %w", host, limit, err)
	}
	return st, nil
}

// answering says, for a failure message, which directors still answer a
// status call: a wedged director answers none.
func answering(l *lab.Lab) string {
	var b strings.Builder
	for _, h := range hosts {
		if _, err := apiStatus(l, h, statusLimit); err != nil {
			fmt.Fprintf(&b, "\n  %v", err)
		} else {
			fmt.Fprintf(&b, "\n  %s answers", h)
		}
	}
	return b.String()
}

// TestPushFirstVirtualServer: three directors running VRRP only get their
// first virtual server by `hactl config push`, each in its own network
// namespace with its own IPVS table, then lose it by a second push. Every
// director applies each version, programs (or deletes) the service in its
// kernel, and keeps answering.
func TestPushFirstVirtualServer(t *testing.T) {
	vmtest.RequireIPVS(t)
	hakeepd, hactlBin := build(t)
	l := labtest.New(t, 3, lab.Options{})
	kernels := map[string]*lvs.Kernel{}
	for _, h := range hosts {
		k, err := lvs.NewKernel("/run/netns/"+l.Host(h).NS, 1)
		if err != nil {
			t.Fatalf("IPVS in %s: %v", h, err)
		}
		defer k.Close()
		kernels[h] = k
	}
	initial := instances([3]int{150, 100, 50}, "")
	startCluster(t, l, hakeepd, hactlBin, initial)
	for _, h := range hosts {
		if got, err := kernelShape(kernels[h]); err != nil || got != "" {
			t.Fatalf("%s before the push: %q %v, want no service", h, got, err)
		}
	}

	// push sends text with hactl from h3, waits for every director to
	// apply it, and checks each one's status and kernel.
	push := func(what, text, wantShape string) {
		t.Helper()
		f := filepath.Join(t.TempDir(), "pushed.conf")
		if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		out, err := hactl(t, hactlBin, l, "h3", "config", "push", f, "--wait", "--timeout", "20s")
		if err != nil {
			t.Fatalf("%s: hactl config push: %v\n%s\nafter the push:%s", what, err, out, answering(l))
		}
		t.Logf("%s: pushed and applied on all three in %v", what, time.Since(start).Round(time.Millisecond))
		var version uint64
		for _, h := range hosts {
			waitFor(t, fmt.Sprintf("%s: %s's kernel table", what, h), 10*time.Second, func() error {
				got, err := kernelShape(kernels[h])
				if err != nil {
					return err
				}
				if got != wantShape {
					return fmt.Errorf("service %q, want %q", got, wantShape)
				}
				return nil
			})
			// The operator's view: hactl status on each director shows
			// the committed version running there.
			st, err := status(t, hactlBin, l, h)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if st.Config.Version == 0 || st.Config.Running != st.Config.Version || st.Config.LocalError != "" {
				t.Errorf("%s: %s config %+v, want the committed version running", what, h, st.Config)
			}
			if version == 0 {
				version = st.Config.Version
			} else if st.Config.Version != version {
				t.Errorf("%s: %s runs version %d, others %d", what, h, st.Config.Version, version)
			}
			// And the daemon answers promptly, its own view matching.
			st, err = apiStatus(l, h, statusLimit)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			n := 0
			for _, vs := range st.VirtualServers {
				if vs.Address == "10.99.0.100" && vs.Port == 80 {
					n++
				}
			}
			if want := min(len(wantShape), 1); n != want {
				t.Errorf("%s: %s's status lists the pushed virtual server %d times, want %d: %+v", what, h, n, want, st.VirtualServers)
			}
		}
	}
	push("push adding the first virtual server", initial+pushedVS, pushedShape)
	push("push removing the last virtual server", initial, "")
}
