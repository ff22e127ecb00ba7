package consensus

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"hakeep/config"
	"hakeep/internal/pki"
	"hakeep/internal/testpki"
)

// frame is one node-to-node RPC frame: a 4-byte big-endian length and
// that many bytes.
func frame(body []byte) []byte {
	b := make([]byte, 4, 4+len(body))
	binary.BigEndian.PutUint32(b, uint32(len(body)))
	return append(b, body...)
}

func jsonFrame(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return frame(b)
}

// rawRPC is the attacker of issue 12 (ten lines of Python): it connects to
// a director's Raft port (over TLS with conf, else plain TCP), writes the
// byte 'P' and data, half-closes when asked, and returns the first reply
// frame's body, or why there is none. A refusal must also close the
// connection: with refused set, a connection left open is an error.
func rawRPC(addr string, conf *tls.Config, data []byte, closeWrite, refused bool) (string, error) {
	d := &net.Dialer{Timeout: 2 * time.Second}
	var c net.Conn
	var err error
	if conf != nil {
		c, err = tls.DialWithDialer(d, "tcp", addr, conf)
	} else {
		c, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return "", fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(append([]byte{connRPC}, data...)); err != nil {
		return "", fmt.Errorf("write: %w", err)
	}
	if closeWrite {
		if tc, ok := c.(*tls.Conn); ok {
			_ = tc.CloseWrite()
		} else {
			_ = c.(*net.TCPConn).CloseWrite()
		}
	}
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return "", fmt.Errorf("read reply: %w", err)
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(c, body); err != nil {
		return "", fmt.Errorf("read reply body: %w", err)
	}
	if !refused {
		return string(body), nil
	}
	// The server closes after a refusal: nothing more comes.
	var b [1]byte
	if n, err := c.Read(b[:]); n > 0 || err == nil {
		return string(body), errors.New("connection left open after the reply")
	}
	return string(body), nil
}

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestOpenClusterAttack is issue 12's report as a test. With the README's
// cluster block (no tls_*, no gossip_key) three directors formed a
// cluster, and a stranger's `P` + {"op":"remove","id":"d3"} on the Raft
// port removed d3. Now that block is refused (config and start); a
// default, closed cluster does not talk to the stranger; and only a
// cluster that says insecure_open_cluster, and warns about it at start,
// can still be commanded so.
func TestOpenClusterAttack(t *testing.T) {
	attack := jsonFrame(t, map[string]string{"op": "remove", "id": "d3"})

	t.Run("the README block does not start", func(t *testing.T) {
		text := "cluster {\n    node_name d1\n    bind_addr 127.0.0.1\n    join { 127.0.0.2:7401 127.0.0.3:7401 }\n    bootstrap_expect 3\n    data_dir " + t.TempDir() + "\n}\n"
		cfg, diags := config.Parse("d1.conf", []byte(text), config.Options{NoInclude: true})
		if !diags.HasErrors() || !strings.Contains(diags.String(), "d1.conf:1: cluster: no tls_cert/tls_key/tls_ca and no gossip_key") {
			t.Fatalf("hakeepd -t would pass the open block: %s", diags)
		}
		cc, err := ConfigFromCluster(cfg.Cluster, "", testLogger())
		if err != nil {
			t.Fatal(err)
		}
		cc.RaftPort, cc.GossipPort = 0, 0
		if n, err := New(cc); !errors.Is(err, ErrOpen) || !strings.Contains(err.Error(), "insecure_open_cluster") {
			if n != nil {
				n.Close()
			}
			t.Fatalf("New with the open block = %v, want ErrOpen naming the way out", err)
		}
	})

	t.Run("a closed cluster does not take it", func(t *testing.T) {
		c := newCluster(t, clusterOpts{n: 3, expect: 3})
		l := c.leader()
		for _, conf := range []*tls.Config{nil, testpki.New(t).ClientTLS(t, testpki.New(t).Issue(t, "d1"))} {
			if reply, err := rawRPC(l.node.RaftAddr(), conf, attack, false, true); err == nil {
				t.Fatalf("attacker got a reply: %s", reply)
			}
		}
		if v := l.node.Voters(); !slices.Equal(v, []string{"d1", "d2", "d3"}) {
			t.Fatalf("voters after the attack = %v", v)
		}
	})

	t.Run("insecure_open_cluster takes it, after a warning", func(t *testing.T) {
		var logs syncBuffer
		log := slog.New(slog.NewTextHandler(&logs, nil))
		c := newCluster(t, clusterOpts{n: 3, expect: 3, insecure: true, log: log})
		if got := strings.Count(logs.String(), "INSECURE: insecure_open_cluster"); got != 3 {
			t.Fatalf("%d start warnings, want one per director:\n%s", got, logs.String())
		}
		l := c.leader()
		if !l.node.Security().Insecure {
			t.Fatal("Security() does not say insecure")
		}
		reply, err := rawRPC(l.node.RaftAddr(), nil, attack, false, false)
		if err != nil {
			t.Fatal(err)
		}
		if reply != `{"result":{}}` {
			t.Fatalf("reply = %s", reply)
		}
		waitFor(t, "d3 removed by the stranger", 5*time.Second, func() bool { return slices.Equal(l.node.Voters(), []string{"d1", "d2"}) })
	})
}

// TestNameBinding: on the Raft port, a peer is the director its
// certificate names, and only a director of the cluster may change it.
func TestNameBinding(t *testing.T) {
	c := newCluster(t, clusterOpts{n: 3, expect: 3})
	l := c.leader()
	push, err := EncodeCommand(Command{Type: CmdPushConfig, Push: &PushConfig{PushID: "evil", Text: "vrrp_script x { script /bin/evil }", PushedBy: "stranger"}})
	if err != nil {
		t.Fatal(err)
	}
	planCmd := []byte(`{"name":"a.conf","text":"global_defs {}\n"}`)
	stranger := c.ca.ClientTLS(t, c.ca.Issue(t, "d9")) // the cluster's CA, not a director of it
	operator := c.ca.ClientTLS(t, c.ca.IssueReq(t, pki.CertRequest{Name: "alice", Client: true}))
	member := c.ca.ClientTLS(t, c.nodes[1].files) // d2's own files
	otherCA := testpki.New(t)
	foreign := otherCA.ClientTLS(t, otherCA.Issue(t, "d2"))
	foreign.RootCAs = c.ca.Pool() // it trusts the cluster; the cluster does not trust it
	tests := []struct {
		name string
		conf *tls.Config
		req  rpcRequest
		want string // in the reply; "" means no reply at all
		// refused: the connection must be closed after the reply.
		refused bool
	}{
		{"stranger removes d3", stranger, rpcRequest{Op: opRemove, ID: "d3"}, `"kind":"forbidden"`, true},
		{"stranger commits a configuration", stranger, rpcRequest{Op: opApply, Cmd: push}, "apply: the certificate names d9 localhost, not a director of this cluster", true},
		{"stranger joins as d3", stranger, rpcRequest{Op: opJoin, ID: "d3", Addr: "127.0.0.1:1"}, "a director joins under its own name only", true},
		{"operator certificate", operator, rpcRequest{Op: opRemove, ID: "d3"}, `names no director`, true},
		{"another CA's d2", foreign, rpcRequest{Op: opRemove, ID: "d3"}, "", true},
		{"plain TCP", nil, rpcRequest{Op: opRemove, ID: "d3"}, "", true},
		{"member d2 is authorized", member, rpcRequest{Op: opRemove, ID: "nope"}, `"kind":"not_member"`, false},
		// A dry run carries a whole configuration: directors only.
		{"stranger asks for a dry run", stranger, rpcRequest{Op: opPlan, Cmd: planCmd}, "plan: the certificate names d9 localhost, not a director of this cluster", true},
		{"member d2 asks for a dry run", member, rpcRequest{Op: opPlan, Cmd: planCmd}, `"plan":{"director":"` + l.cfg.NodeName + `"`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reply, err := rawRPC(l.node.RaftAddr(), tc.conf, jsonFrame(t, tc.req), false, tc.refused)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("got a reply: %s", reply)
				}
				return
			}
			if !strings.Contains(reply, tc.want) {
				t.Fatalf("reply %q (err %v), want %q", reply, err, tc.want)
			}
		})
	}
	// Raft traffic from the stranger is cut at once.
	conn, err := tls.Dial("tcp", l.node.RaftAddr(), stranger)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = conn.Write([]byte{connRaft})
	if n, err := conn.Read(make([]byte, 1)); err == nil || n > 0 {
		t.Fatalf("raft connection of a stranger left open (%d, %v)", n, err)
	}
	if v := l.node.Voters(); !slices.Equal(v, []string{"d1", "d2", "d3"}) {
		t.Fatalf("voters = %v", v)
	}
	if _, ok := c.nodes[0].node.FSM().Current(); ok {
		t.Fatal("the stranger's configuration was committed")
	}
	// A director whose certificate names another does not start.
	cfg := c.nodes[0].cfg
	cfg.NodeName, cfg.DataDir, cfg.RaftPort, cfg.GossipPort, cfg.Join = "d4", t.TempDir(), 0, 0, nil
	cfg.TLS, _ = creds(t, c.ca, "d9")
	if n, err := New(cfg); err == nil || !strings.Contains(err.Error(), `names [d9 localhost], not this director's node_name "d4"`) {
		if n != nil {
			n.Close()
		}
		t.Fatalf("New as d4 with d9's certificate = %v", err)
	}
}

// TestRPCBadInput: a malformed frame on the Raft port gets a reply saying
// what is wrong, then the connection closes; the cluster is unaffected.
func TestRPCBadInput(t *testing.T) {
	c := newCluster(t, clusterOpts{n: 3, expect: 3})
	l := c.leader()
	member := c.ca.ClientTLS(t, c.nodes[0].files)
	hdr := func(n uint32) []byte { b := make([]byte, 4); binary.BigEndian.PutUint32(b, n); return b }
	deep := `{"op":"remove","id":"d3","x":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + "}"
	tests := []struct {
		name  string
		data  []byte
		close bool // half-close after writing
		want  string
	}{
		{"oversize", hdr(0xffffffff), false, "message of 4294967295 bytes is over the 67108864 limit"},
		{"truncated", append(hdr(100), `{"op":"rem`...), true, "truncated: 10 of 100 bytes"},
		{"not JSON", frame([]byte("hello")), false, "malformed rpc frame: invalid character"},
		{"wrong type", frame([]byte(`{"op":"remove","id":5}`)), false, "cannot unmarshal number"},
		{"deep nesting", frame([]byte(deep)), false, "exceeded max depth"},
		{"unknown op", frame([]byte(`{"op":"shutdown"}`)), false, `unknown cluster rpc op \"shutdown\"`},
		{"join without address", frame([]byte(`{"op":"join","id":"d9"}`)), false, "join needs node id and raft address"},
		{"join with a bad address", frame([]byte(`{"op":"join","id":"d9","addr":"nowhere"}`)), false, "bad raft address"},
		{"id too long", frame([]byte(`{"op":"remove","id":"` + strings.Repeat("x", 200) + `"}`)), false, "id or caller too long"},
		{"apply of garbage", frame([]byte(`{"op":"apply","cmd":"AAAA"}`)), false, "bad command: unknown codec version 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A command the leader refuses is an answer on a sound stream,
			// which stays open; everything else closes it.
			reply, err := rawRPC(l.node.RaftAddr(), member, tc.data, tc.close, tc.name != "apply of garbage")
			if err != nil || !strings.Contains(reply, tc.want) {
				t.Fatalf("reply %q, err %v; want %q and the connection closed", reply, err, tc.want)
			}
		})
	}
	mustPush(t, c.nodes[1].node, "still fine")
	c.waitVersion(1)
}

// TestReadFrameBoundedMemory: a header claiming the maximum size costs what
// actually arrives, not what it claims.
func TestReadFrameBoundedMemory(t *testing.T) {
	// 0x04000000 is 64 MiB, the largest frame allowed.
	r := io.MultiReader(bytes.NewReader([]byte{0x04, 0, 0, 0}), strings.NewReader(`{"op":"remove"}`))
	before := totalAlloc()
	var req rpcRequest
	err := readFrame(r, &req)
	grew := totalAlloc() - before
	if err == nil || !strings.Contains(err.Error(), "truncated: 15 of 67108864 bytes") {
		t.Fatalf("err = %v", err)
	}
	if grew > 8<<20 {
		t.Fatalf("reading a 15-byte frame that claims 64 MiB allocated %d bytes", grew)
	}
}

// FuzzRPCRequest feeds arbitrary bytes to the Raft port's request reader:
// no panic, and whatever it accepts is a request that passes validation.
func FuzzRPCRequest(f *testing.F) {
	for _, s := range []string{
		`{"op":"remove","id":"d3"}`, `{"op":"join","id":"d4","addr":"127.0.0.1:7301"}`, `{"op":"apply","cmd":"AXsidHlwZSI6InB1c2hfY29uZmlnIn0="}`,
		`{"op":"apply"}`, `[`, `{"op":{"op":{}}}`,
	} {
		f.Add(frame([]byte(s)))
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add(append(frame([]byte(`{"op":"remove","id":"a"}`)), frame([]byte(`{"op":"remove","id":"b"}`))...))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for range 64 {
			req, err := readRequest(r)
			if err != nil {
				return // every malformed input ends the connection
			}
			if err := req.validate(); err != nil {
				t.Fatalf("accepted a request that does not validate: %+v: %v", req, err)
			}
		}
	})
}

func totalAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}
