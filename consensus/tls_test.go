package consensus

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"hakeep/api"
	"hakeep/config"
	"hakeep/internal/testpki"
)

// keyFile writes keys (base64, one a line, the first encrypting) as a
// gossip_key file.
func keyFile(t testing.TB, keys ...[]byte) string {
	t.Helper()
	var lines []string
	for _, k := range keys {
		lines = append(lines, base64.StdEncoding.EncodeToString(k))
	}
	p := filepath.Join(t.TempDir(), "gossip.key")
	if err := os.WriteFile(p, []byte("# rotated by the test\n"+strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// block is the cluster block's security part, as SIGHUP re-reads it.
func block(f testpki.Files, keyFile string) *config.Cluster {
	return &config.Cluster{TLSCert: f.Cert, TLSKey: f.Key, TLSCA: f.CA, GossipKey: keyFile, GossipKeyFile: true}
}

// servedCert is the sha256 of the certificate tn's Raft port presents to
// a new connection.
func servedCert(t *testing.T, tn *tnode, client *tls.Config) string {
	t.Helper()
	conf := client.Clone()
	conf.InsecureSkipVerify = true // we look at what is served, whoever it names
	conn, err := tls.Dial("tcp", tn.node.RaftAddr(), conf)
	if err != nil {
		t.Fatalf("dial %s: %v", tn.cfg.NodeName, err)
	}
	defer conn.Close()
	sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].Raw)
	return hex.EncodeToString(sum[:])
}

// TestCertificateRotation: SIGHUP (ReloadCredentials) swaps a director's
// certificate, and then the CA, with the cluster committing throughout; a
// certificate that names another director, or a file that does not load,
// changes nothing.
func TestCertificateRotation(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	kf := keyFile(t, key)
	ca1 := testpki.New(t)
	c := newCluster(t, clusterOpts{n: 3, expect: 3, ca: ca1, keys: [][]byte{key}})
	c.leader()
	probe := ca1.ClientTLS(t, ca1.Issue(t, "probe"))
	reload := func(tn *tnode, f testpki.Files) {
		t.Helper()
		if err := tn.node.ReloadCredentials(block(f, kf)); err != nil {
			t.Fatalf("reload %s: %v", tn.cfg.NodeName, err)
		}
		tn.files = f
		// Kept connections stay up; new ones must handshake with what
		// was just loaded.
		tn.node.closeRPCConns()
	}
	pushed := uint64(0)
	push := func() {
		t.Helper()
		for _, tn := range c.nodes { // through each: followers forward over new connections
			pushed++
			mustPush(t, tn.node, fmt.Sprintf("v%d", pushed))
		}
	}

	// The TCP API (api_listen) serves the same credentials.
	d1 := c.nodes[0]
	apiSrv := api.NewServer(api.Compose(nil, d1.node.API()), testLogger())
	defer apiSrv.Close()
	apiAddr, err := apiSrv.ServeTLS("127.0.0.1:0", d1.node.APIServerTLS())
	if err != nil {
		t.Fatal(err)
	}
	apiCert := func() string {
		conf := ca1.ClientTLS(t, ca1.Issue(t, "probe"))
		conf.InsecureSkipVerify = true
		conn, err := tls.Dial("tcp", apiAddr.String(), conf)
		if err != nil {
			t.Fatalf("dial the API: %v", err)
		}
		defer conn.Close()
		sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].Raw)
		return hex.EncodeToString(sum[:])
	}

	// A new certificate from the same CA.
	before := servedCert(t, d1, probe)
	if apiCert() != before {
		t.Fatal("the API serves another certificate than the Raft port")
	}
	fresh := ca1.Issue(t, "d1")
	reload(d1, fresh)
	after := servedCert(t, d1, probe)
	if after == before || d1.node.Security().Identity.CertSHA256 != after || apiCert() != after {
		t.Fatalf("served certificate %s, before %s, status %s, API %s", after, before, d1.node.Security().Identity.CertSHA256, apiCert())
	}
	push()

	// Refused reloads leave everything as it was.
	cur := servedCert(t, d1, probe)
	for name, f := range map[string]testpki.Files{
		"names d2":     ca1.Issue(t, "d2"),
		"missing file": {Cert: "/nonexistent.pem", Key: fresh.Key, CA: fresh.CA},
		"expired":      ca1.Expired(t, "d1"),
	} {
		if err := d1.node.ReloadCredentials(block(f, kf)); err == nil {
			t.Errorf("reload with %s succeeded", name)
		}
		if got := servedCert(t, d1, probe); got != cur {
			t.Errorf("after a refused reload (%s) d1 serves another certificate", name)
		}
	}

	// The CA: trust both, move every director to the new one, drop the old.
	ca2 := testpki.New(t)
	bundle := filepath.Join(t.TempDir(), "ca-bundle.pem")
	if err := os.WriteFile(bundle, append(append([]byte{}, ca1.PEM...), ca2.PEM...), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tn := range c.nodes {
		f := tn.files
		f.CA = bundle
		reload(tn, f)
	}
	push()
	for _, tn := range c.nodes {
		f := ca2.Issue(t, tn.cfg.NodeName)
		f.CA = bundle
		reload(tn, f)
		push()
	}
	for _, tn := range c.nodes {
		reload(tn, ca2.Issue(t, tn.cfg.NodeName))
	}
	push()
	if got := len(c.nodes[2].node.Security().Identity.CASHA256); got != 1 {
		t.Fatalf("%d CAs trusted after the rotation", got)
	}
	// A certificate of the old CA no longer gets in.
	if reply, err := rawRPC(c.nodes[0].node.RaftAddr(), ca1.ClientTLS(t, ca1.Issue(t, "d2")), jsonFrame(t, rpcRequest{Op: opRemove, ID: "nope"}), false, true); err == nil {
		t.Fatalf("old CA's certificate got a reply: %s", reply)
	}
	c.waitVersion(pushed)
}

// TestGossipKey: a director with another key, or none, cannot join.
func TestGossipKey(t *testing.T) {
	c := newCluster(t, clusterOpts{n: 3, expect: 3, keys: [][]byte{[]byte("0123456789abcdef")}})
	c.leader()
	waitFor(t, "all alive in gossip", 10*time.Second, func() bool {
		alive := 0
		for _, m := range c.nodes[0].node.Members() {
			if m.Status == MemberAlive && m.Voter {
				alive++
			}
		}
		return alive == 3
	})
	for name, k := range map[string][][]byte{"wrong key": {[]byte("fedcba9876543210")}, "no key": nil} {
		cfg := c.nodes[0].cfg
		cfg.NodeName, cfg.DataDir, cfg.RaftPort, cfg.GossipPort, cfg.GossipKeys, cfg.BootstrapExpect, cfg.Join = "x", t.TempDir(), 0, 0, k, 0, nil
		cfg.TLS, _ = creds(t, c.ca, "x")
		cfg.InsecureOpen = k == nil
		n, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.gossip.join([]string{c.nodes[0].node.GossipAddr()}); err == nil {
			t.Errorf("%s: gossip join succeeded", name)
		}
		n.Close()
		for _, m := range c.nodes[0].node.Members() {
			if m.Name == "x" && m.Status == MemberAlive {
				t.Errorf("%s: intruder is alive in the pool", name)
			}
		}
	}
	// Suspect/dead detection: stop d3 and watch its state change.
	c.nodes[2].node.gossip.crash() // no graceful leave: looks like a crash
	sawSuspect := false
	waitFor(t, "d3 seen dead", 15*time.Second, func() bool {
		for _, m := range c.nodes[1].node.Members() {
			sawSuspect = sawSuspect || (m.Name == "d3" && m.Status == MemberSuspect)
		}
		for _, m := range c.nodes[0].node.Members() {
			if m.Name == "d3" {
				return m.Status == MemberDead
			}
		}
		return false
	})
	t.Logf("d3 shown suspect before dead: %v", sawSuspect)
}

// TestGossipKeyRotation: the gossip key is replaced by three reloads on
// every director (add the new key, encrypt with it, drop the old), and at
// every step every pair of directors still talks (a join is a full
// push/pull exchange, encrypted both ways).
func TestGossipKeyRotation(t *testing.T) {
	k1, k2 := []byte("1111111111111111"), []byte("2222222222222222")
	c := newCluster(t, clusterOpts{n: 3, expect: 3, keys: [][]byte{k1}})
	c.leader()
	talk := func(when string) {
		t.Helper()
		for _, a := range c.nodes {
			for _, b := range c.nodes {
				if a != b {
					if _, err := a.node.gossip.join([]string{b.node.GossipAddr()}); err != nil {
						t.Fatalf("%s: %s cannot talk to %s: %v", when, a.cfg.NodeName, b.cfg.NodeName, err)
					}
				}
			}
		}
	}
	outsider := func(keys ...[]byte) error {
		t.Helper()
		cfg := c.nodes[0].cfg
		cfg.NodeName, cfg.DataDir, cfg.RaftPort, cfg.GossipPort, cfg.GossipKeys, cfg.BootstrapExpect, cfg.Join = "x", t.TempDir(), 0, 0, keys, 0, nil
		cfg.TLS, _ = creds(t, c.ca, "x")
		n, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		_, err = n.gossip.join([]string{c.nodes[0].node.GossipAddr()})
		return err
	}
	if outsider(k2) == nil {
		t.Fatal("a director with only the new key joined before the rotation: the check below proves nothing")
	}
	talk("before")
	for _, step := range []struct {
		what string
		keys [][]byte
	}{
		{"new key installed", [][]byte{k1, k2}},
		{"new key encrypts", [][]byte{k2, k1}},
		{"old key dropped", [][]byte{k2}},
	} {
		f := keyFile(t, step.keys...)
		for _, tn := range c.nodes {
			if err := tn.node.ReloadCredentials(block(tn.files, f)); err != nil {
				t.Fatalf("%s on %s: %v", step.what, tn.cfg.NodeName, err)
			}
			if got := tn.node.Security().GossipKeys; got != len(step.keys) {
				t.Fatalf("%s on %s: %d keys installed", step.what, tn.cfg.NodeName, got)
			}
			talk(step.what + " on " + tn.cfg.NodeName)
		}
	}
	if outsider(k1) == nil {
		t.Fatal("a director with only the old key still joins")
	}
	if err := outsider(k2); err != nil {
		t.Fatalf("a director with the new key cannot join: %v", err)
	}
	for _, m := range c.nodes[0].node.Members() {
		if m.Name != "x" && m.Status == MemberDead {
			t.Fatalf("%s went dead during the rotation", m.Name)
		}
	}
	// Dropping the key altogether, or turning TLS off, needs a restart.
	if err := c.nodes[0].node.ReloadCredentials(&config.Cluster{TLSCert: c.nodes[0].files.Cert, TLSKey: c.nodes[0].files.Key, TLSCA: c.nodes[0].files.CA}); err == nil ||
		!strings.Contains(err.Error(), "gossip_key removed") {
		t.Fatalf("reload without gossip_key = %v", err)
	}
	if err := c.nodes[0].node.ReloadCredentials(&config.Cluster{GossipKey: keyFile(t, k2), GossipKeyFile: true}); err == nil || !strings.Contains(err.Error(), "needs a restart") {
		t.Fatalf("reload without TLS = %v", err)
	}
}

// TestAuditTrail: push, rollback and remove are recorded with who asked
// (as the API authenticated them) and which director handed the request to
// the leader; the API's audit merges them in order.
func TestAuditTrail(t *testing.T) {
	c := newCluster(t, clusterOpts{n: 3, expect: 3})
	l := c.leader()
	f := followers(c, l)[0]
	who := "uid 0 (root) pid 42 via the unix socket on " + f.cfg.NodeName
	ctx := WithCaller(ctxT(t, 10*time.Second), who)
	if _, err := f.node.Push(ctx, "a.conf", []byte("a"), "alice@admin", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := f.node.Rollback(ctx, 1, "alice@admin", ""); err != nil {
		t.Fatal(err)
	}
	victim := followers(c, l)[1]
	if err := f.node.Remove(ctx, victim.cfg.NodeName); err != nil {
		t.Fatal(err)
	}
	// The refusal names the sentinel once (it used to say it twice).
	err := f.node.Remove(ctx, "nope")
	if !errors.Is(err, ErrNotMember) || strings.Count(err.Error(), ErrNotMember.Error()) != 1 {
		t.Fatalf("remove unknown = %v", err)
	}
	waitFor(t, "the removal recorded on "+f.cfg.NodeName, 10*time.Second, func() bool { return len(f.node.FSM().MembershipLog()) == 1 })
	m := f.node.FSM().MembershipLog()[0]
	if m.Action != MemberRemove || m.Node != victim.cfg.NodeName || m.Caller != who || !strings.Contains(m.Via, "director "+f.cfg.NodeName) {
		t.Fatalf("membership record = %+v", m)
	}
	events, err := f.node.API().Audit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events {
		got = append(got, e.Action+" "+e.Node+" "+e.Caller)
	}
	want := []string{"push  " + who, "rollback  " + who, "remove " + victim.cfg.NodeName + " " + who}
	if !slices.Equal(got, want) {
		t.Fatalf("audit = %q, want %q", got, want)
	}
	var hist []api.ConfigVersion
	hist, _ = f.node.API().ConfigHistory(context.Background())
	if len(hist) != 2 || hist[0].Caller != who || hist[1].PushedBy != "alice@admin" {
		t.Fatalf("history = %+v", hist)
	}
}
