package consensus

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"hakeep/config"
)

// checkSecurity refuses an open node unless the operator asked for one by
// name, binds the certificate to the node name, and warns at every start
// of a node that runs open.
func checkSecurity(cfg *Config, log *slog.Logger) error {
	for _, k := range cfg.GossipKeys {
		if n := len(k); n != 16 && n != 24 && n != 32 {
			return fmt.Errorf("start consensus: a gossip key is %d bytes, want 16, 24 or 32", n)
		}
	}
	if cfg.TLS != nil {
		if err := cfg.TLS.bind(cfg.NodeName); err != nil {
			return fmt.Errorf("start consensus: %w", err)
		}
	}
	var open []string
	if cfg.TLS == nil {
		open = append(open, fmt.Sprintf("the Raft port %d takes plain TCP from anyone who reaches it, including configurations whose scripts every director runs as root", cfg.RaftPort))
	}
	if len(cfg.GossipKeys) == 0 {
		open = append(open, fmt.Sprintf("gossip on port %d is neither encrypted nor authenticated", cfg.GossipPort))
	}
	if len(open) == 0 {
		return nil
	}
	if !cfg.InsecureOpen {
		return fmt.Errorf("start consensus: %w: %s (configure tls_cert, tls_key, tls_ca and gossip_key: `hactl tls init`; or insecure_open_cluster for a lab)",
			ErrOpen, strings.Join(open, "; "))
	}
	log.Warn("INSECURE: insecure_open_cluster: this director runs an open cluster: "+strings.Join(open, "; ")+
		"; anyone on the network can command it. For a lab only: `hactl tls init` makes what a closed cluster needs",
		"insecure_open_cluster", true)
	return nil
}

// gossipKeys reads the gossip_key value: one base64 key, or a file of keys,
// one a line (blank lines and # comments skipped). The first key encrypts;
// all of them decrypt, which is how a key is rotated without downtime.
func gossipKeys(v string, isFile bool) ([][]byte, error) {
	lines := []string{v}
	if isFile {
		b, err := os.ReadFile(v)
		if err != nil {
			return nil, fmt.Errorf("read key file: %w", err)
		}
		lines = strings.Split(string(b), "\n")
	}
	var keys [][]byte
	for i, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		key, err := base64.StdEncoding.DecodeString(l)
		if err != nil {
			return nil, fmt.Errorf("line %d: not base64: %w", i+1, err)
		}
		switch len(key) {
		case 16, 24, 32:
		default:
			return nil, fmt.Errorf("line %d: key is %d bytes, want 16, 24 or 32", i+1, len(key))
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, errors.New("no key in it")
	}
	return keys, nil
}

// Security says how this director's cluster ports are protected.
type Security struct {
	// Insecure: running open (insecure_open_cluster), TLS or gossip keys
	// missing.
	Insecure bool `json:"insecure"`
	TLS      bool `json:"tls"`
	// Identity is this director's certificate (with TLS).
	Identity *CredentialInfo `json:"identity,omitempty"`
	// GossipKeys is the number of installed gossip keys (0: plain gossip).
	GossipKeys int `json:"gossip_keys"`
}

// Security reports the current protection.
func (n *Node) Security() Security {
	s := Security{TLS: n.cfg.TLS != nil}
	if n.cfg.TLS != nil {
		info := n.cfg.TLS.Info()
		s.Identity = &info
	}
	if n.gossip != nil {
		s.GossipKeys = n.gossip.keyCount()
	}
	s.Insecure = !s.TLS || s.GossipKeys == 0
	return s
}

// ReloadCredentials re-reads what the cluster block c names for this
// director's identity: the TLS certificate, key and CA, and the gossip
// keys. The daemon calls it on SIGHUP with the re-read block. New
// connections use the new certificate; open ones keep theirs, so a
// rotation costs no downtime. A file that does not load, or a certificate
// that does not name this director, changes nothing. Turning TLS or gossip
// encryption on or off needs a restart and is refused here.
func (n *Node) ReloadCredentials(c *config.Cluster) error {
	if c == nil {
		return errors.New("reload cluster credentials: no cluster block")
	}
	var errs []error
	hasTLS := c.TLSCert != "" && c.TLSKey != "" && c.TLSCA != ""
	switch {
	case hasTLS != (n.cfg.TLS != nil):
		errs = append(errs, fmt.Errorf("%s: turning cluster TLS on or off needs a restart of hakeepd", c.Pos))
	case hasTLS:
		if err := n.cfg.TLS.Reload(c.TLSCert, c.TLSKey, c.TLSCA); err != nil {
			errs = append(errs, fmt.Errorf("%s: reload cluster TLS: %w", c.Pos, err))
		} else {
			info := n.cfg.TLS.Info()
			n.log.Info("cluster TLS reloaded: new connections use it", "cert", info.CertFile, "names", info.Names,
				"not_after", info.NotAfter.Format(time.RFC3339), "cert_sha256", info.CertSHA256[:16], "cas", len(info.CASHA256))
		}
	}
	var keys [][]byte
	if c.GossipKey != "" {
		k, err := gossipKeys(c.GossipKey, c.GossipKeyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: gossip_key: %w", c.Pos, err))
		}
		keys = k
	}
	if c.GossipKey == "" || keys != nil {
		if err := n.gossip.setKeys(keys); err != nil {
			errs = append(errs, fmt.Errorf("%s: gossip_key: %w", c.Pos, err))
		} else if len(keys) > 0 {
			n.log.Info("gossip keys reloaded: the first encrypts, all decrypt", "keys", len(keys))
		}
	}
	if n.Security().Insecure && !c.InsecureOpen {
		errs = append(errs, fmt.Errorf("%s: this director runs open (insecure_open_cluster): closing it needs a restart with tls_* and gossip_key", c.Pos))
	}
	return errors.Join(errs...)
}

// APIServerTLS is the TCP API's (api_listen) TLS backed by this director's
// cluster credentials, so SIGHUP's ReloadCredentials rotates it too; nil
// without cluster TLS.
func (n *Node) APIServerTLS() *tls.Config {
	if n.cfg.TLS == nil {
		return nil
	}
	return n.cfg.TLS.APIServerTLS()
}
