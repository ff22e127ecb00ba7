package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Client talks to hakeepd's API.
type Client struct {
	hc   *http.Client
	base string
	// where is shown in errors ("socket /run/hakeep/hakeepd.sock").
	where string
}

// NewClient returns a client for the unix socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}
	return &Client{hc: &http.Client{Transport: tr}, base: "http://hakeepd", where: "socket " + path}
}

// NewTLSClient returns a client for the TCP API at addr with mutual TLS.
func NewTLSClient(addr string, conf *tls.Config) *Client {
	tr := &http.Transport{TLSClientConfig: conf}
	return &Client{hc: &http.Client{Transport: tr}, base: "https://" + addr, where: addr}
}

// ErrUnreachable wraps failures to reach the daemon at all.
var ErrUnreachable = errors.New("cannot reach hakeepd")

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%w at %s: %v", ErrUnreachable, c.where, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("read reply from %s: %w", c.where, err)
	}
	if resp.StatusCode != http.StatusOK {
		var eb errorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error != nil {
			return eb.Error
		}
		return &Error{Code: CodeFailed, Message: fmt.Sprintf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(data))}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode reply to %s %s: %w", method, path, err)
	}
	return nil
}

// Raw fetches path and returns the reply body as it is (hactl --json).
func (c *Client) Raw(ctx context.Context, path string) (json.RawMessage, error) {
	var m json.RawMessage
	err := c.do(ctx, http.MethodGet, path, nil, &m)
	return m, err
}

func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.do(ctx, http.MethodGet, "/v1/status", nil, &s)
}

func (c *Client) Instances(ctx context.Context) ([]Instance, error) {
	var v []Instance
	return v, c.do(ctx, http.MethodGet, "/v1/vrrp", nil, &v)
}

func (c *Client) VirtualServers(ctx context.Context) ([]VirtualServer, error) {
	var v []VirtualServer
	return v, c.do(ctx, http.MethodGet, "/v1/ipvs", nil, &v)
}

func (c *Client) Checks(ctx context.Context) ([]Check, error) {
	var v []Check
	return v, c.do(ctx, http.MethodGet, "/v1/checks", nil, &v)
}

func (c *Client) ConfigValidate(ctx context.Context, req ValidateRequest) (ValidateResult, error) {
	var v ValidateResult
	return v, c.do(ctx, http.MethodPost, "/v1/config/validate", req, &v)
}

func (c *Client) ConfigPush(ctx context.Context, req PushRequest) (PushResult, error) {
	var v PushResult
	return v, c.do(ctx, http.MethodPost, "/v1/config/push", req, &v)
}

func (c *Client) ConfigShow(ctx context.Context) (ConfigVersion, error) {
	var v ConfigVersion
	return v, c.do(ctx, http.MethodGet, "/v1/config", nil, &v)
}

func (c *Client) ConfigHistory(ctx context.Context) ([]ConfigVersion, error) {
	var v []ConfigVersion
	return v, c.do(ctx, http.MethodGet, "/v1/config/history", nil, &v)
}

func (c *Client) ConfigApplied(ctx context.Context, version uint64) (PushResult, error) {
	var v PushResult
	return v, c.do(ctx, http.MethodGet, "/v1/config/applied?version="+strconv.FormatUint(version, 10), nil, &v)
}

func (c *Client) ConfigRollback(ctx context.Context, req RollbackRequest) (PushResult, error) {
	var v PushResult
	return v, c.do(ctx, http.MethodPost, "/v1/config/rollback", req, &v)
}

func (c *Client) ClusterInit(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/cluster/init", struct{}{}, nil)
}

func (c *Client) ClusterJoin(ctx context.Context, addr string) error {
	return c.do(ctx, http.MethodPost, "/v1/cluster/join", JoinRequest{Addr: addr}, nil)
}

func (c *Client) ClusterMembers(ctx context.Context) ([]Member, error) {
	var v []Member
	return v, c.do(ctx, http.MethodGet, "/v1/cluster/members", nil, &v)
}

func (c *Client) ClusterRemove(ctx context.Context, node string) error {
	return c.do(ctx, http.MethodPost, "/v1/cluster/remove", RemoveRequest{Node: node}, nil)
}

// Audit fetches the cluster's audit trail.
func (c *Client) Audit(ctx context.Context) ([]AuditEvent, error) {
	var v []AuditEvent
	return v, c.do(ctx, http.MethodGet, "/v1/cluster/audit", nil, &v)
}

// WaitApplied polls until every voter has applied version (or reported an
// error for it), or ctx ends; it returns the last result either way.
func (c *Client) WaitApplied(ctx context.Context, version uint64) (PushResult, error) {
	for {
		r, err := c.ConfigApplied(ctx, version)
		if err != nil {
			return r, err
		}
		if len(r.Pending) == 0 {
			return r, nil
		}
		select {
		case <-ctx.Done():
			return r, fmt.Errorf("waiting for %v to apply version %d: %w", r.Pending, version, ctx.Err())
		case <-time.After(5 * time.Millisecond): // a local socket call: cheap
		}
	}
}
