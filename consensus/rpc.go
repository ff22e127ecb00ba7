package consensus

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"hakeep/api"
)

// Node-to-node RPC ops (one JSON request and response per connection).
const (
	opApply  = "apply"
	opJoin   = "join"
	opRemove = "remove"
)

// maxRPCBody bounds one forwarded request (a configuration text fits
// many times over).
const maxRPCBody = 64 << 20

type rpcRequest struct {
	Op   string `json:"op"`
	Cmd  []byte `json:"cmd,omitempty"`
	ID   string `json:"id,omitempty"`
	Addr string `json:"addr,omitempty"`
	// Forwarded: a follower passed this on; it is not forwarded again.
	Forwarded bool `json:"forwarded,omitempty"`
	// Caller is who asked, as the director that took the request saw it
	// (an API caller, or the director itself), for the audit trail.
	Caller string `json:"caller,omitempty"`
}

// Bounds on a request's names, so that a log line or an audit record
// stays a line.
const (
	maxIDLen     = 128
	maxAddrLen   = 300
	maxCallerLen = 512
)

// validate checks what can be checked without the cluster's state.
func (r rpcRequest) validate() error {
	switch r.Op {
	case opApply:
		if len(r.Cmd) == 0 {
			return fmt.Errorf("%w: apply without a command", ErrBadCommand)
		}
	case opJoin:
		if r.ID == "" || r.Addr == "" {
			return fmt.Errorf("%w: join needs node id and raft address", ErrBadCommand)
		}
		if _, _, err := net.SplitHostPort(r.Addr); err != nil || len(r.Addr) > maxAddrLen {
			return fmt.Errorf("%w: join: bad raft address %.64q", ErrBadCommand, r.Addr)
		}
	case opRemove:
		if r.ID == "" {
			return fmt.Errorf("%w: remove needs a node id", ErrBadCommand)
		}
	case opPlan:
		if len(r.Cmd) == 0 {
			return fmt.Errorf("%w: plan without a configuration", ErrBadCommand)
		}
	default:
		return fmt.Errorf("%w %.64q", errUnknownOp, r.Op)
	}
	if len(r.ID) > maxIDLen || len(r.Caller) > maxCallerLen {
		return fmt.Errorf("%w: %s: id or caller too long", ErrBadCommand, r.Op)
	}
	return nil
}

type rpcResponse struct {
	Result ApplyResult `json:"result"`
	Error  string      `json:"error,omitempty"`
	// Kind classifies Error so the caller can rebuild a sentinel.
	Kind        string   `json:"kind,omitempty"`
	Diagnostics []string `json:"diagnostics,omitempty"`
	// Plan is the answer to opPlan.
	Plan *api.DirectorPlan `json:"plan,omitempty"`
}

// Error kinds carried over RPC.
const (
	kindNotLeader = "not_leader"
	kindInvalid   = "invalid"
	kindNotMember = "not_member"
	kindForbidden = "forbidden"
	kindBad       = "bad_request"
	kindOther     = "error"
)

// RPC framing: a 4-byte big-endian length, then that many bytes of JSON.
// Connections are kept and reused for many requests.

func writeFrame(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > maxRPCBody {
		return fmt.Errorf("rpc message of %d bytes is over the %d limit", len(b), maxRPCBody)
	}
	buf := make([]byte, 4+len(b))
	binary.BigEndian.PutUint32(buf, uint32(len(b)))
	copy(buf[4:], b)
	_, err = w.Write(buf)
	return err
}

// errFrame wraps a frame that arrived but cannot be read: the peer is
// told why before the connection closes.
var errFrame = errors.New("malformed rpc frame")

func readFrame(r io.Reader, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxRPCBody {
		return fmt.Errorf("%w: message of %d bytes is over the %d limit", errFrame, n, maxRPCBody)
	}
	// Grow with what actually arrives: a header claiming 64 MiB followed
	// by nothing must not cost 64 MiB.
	var buf bytes.Buffer
	if got, err := io.CopyN(&buf, r, int64(n)); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: truncated: %d of %d bytes", errFrame, got, n)
		}
		return err
	}
	if err := json.Unmarshal(buf.Bytes(), v); err != nil {
		return fmt.Errorf("%w: %v", errFrame, err)
	}
	return nil
}

// readRequest reads and checks one request frame.
func readRequest(r io.Reader) (rpcRequest, error) {
	var req rpcRequest
	if err := readFrame(r, &req); err != nil {
		return rpcRequest{}, err
	}
	if err := req.validate(); err != nil {
		return rpcRequest{}, err
	}
	return req, nil
}

// rpcIdle is how long a kept RPC connection may sit unused.
const rpcIdle = 2 * time.Minute

// serveRPC serves requests from a peer on one connection until it closes.
// A frame that cannot be read, or a request that is malformed or not
// allowed, is answered with the reason and the connection is closed.
func (n *Node) serveRPC(c net.Conn, p peer) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		_ = c.SetDeadline(time.Now().Add(rpcIdle))
		req, err := readRequest(br)
		if err != nil {
			if errors.Is(err, errFrame) || errors.Is(err, ErrBadCommand) || errors.Is(err, errUnknownOp) {
				n.log.Warn("refused malformed cluster rpc", "peer", p.String(), "err", err)
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_ = writeFrame(c, rpcResponse{Kind: kindBad, Error: err.Error()})
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				n.log.Debug("cluster rpc connection ended", "peer", p.String(), "err", err)
			}
			return
		}
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		if err := n.authorize(p, req); err != nil {
			n.log.Warn("refused cluster rpc", "op", req.Op, "id", req.ID, "peer", p.String(), "err", err)
			_ = writeFrame(c, toResponse(ApplyResult{}, err))
			return
		}
		resp := n.serveOne(req, p)
		if err := writeFrame(c, resp); err != nil {
			n.log.Debug("cluster rpc reply failed", "err", err)
			return
		}
	}
}

func (n *Node) serveOne(req rpcRequest, p peer) rpcResponse {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if req.Op == opPlan {
		return n.servePlan(req) // every director answers for itself
	}
	if n.raft.State() == raft.Leader {
		res, err := n.handleLocal(ctx, req, p.String())
		return toResponse(res, err)
	}
	addr, _ := n.raft.LeaderWithID()
	if req.Forwarded || addr == "" {
		return rpcResponse{Kind: kindNotLeader, Error: "not the leader"}
	}
	// A peer that does not know the leader (a joining director) asked us:
	// pass it on once (authorized here; the leader trusts us with it).
	req.Forwarded = true
	res, err := n.callRPC(ctx, string(addr), req)
	return toResponse(res, err)
}

func toResponse(res ApplyResult, err error) rpcResponse {
	resp := rpcResponse{Result: res}
	if err == nil {
		return resp
	}
	resp.Error = err.Error()
	var ve *ValidationError
	switch {
	case errors.As(err, &ve):
		resp.Kind, resp.Diagnostics = kindInvalid, ve.Diagnostics
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		resp.Kind = kindNotLeader
	case errors.Is(err, ErrNotMember):
		resp.Kind = kindNotMember
	case errors.Is(err, ErrForbidden):
		resp.Kind = kindForbidden
	case errors.Is(err, ErrBadCommand), errors.Is(err, errUnknownOp):
		resp.Kind = kindBad
	default:
		resp.Kind = kindOther
	}
	return resp
}

// remoteError is an error a peer sent back, rebuilt around its sentinel so
// errors.Is works; its text is the peer's, which already names the
// sentinel (wrapping it again would say it twice).
type remoteError struct {
	msg  string
	kind error
}

func (e *remoteError) Error() string {
	if strings.Contains(e.msg, e.kind.Error()) {
		return e.msg
	}
	return e.msg + ": " + e.kind.Error()
}

func (e *remoteError) Unwrap() error { return e.kind }

func fromResponse(resp rpcResponse) (ApplyResult, error) {
	switch resp.Kind {
	case "":
		return resp.Result, nil
	case kindInvalid:
		return resp.Result, &ValidationError{Diagnostics: resp.Diagnostics}
	case kindNotLeader:
		return resp.Result, &remoteError{resp.Error, raft.ErrNotLeader}
	case kindNotMember:
		return resp.Result, &remoteError{resp.Error, ErrNotMember}
	case kindForbidden:
		return resp.Result, &remoteError{resp.Error, ErrForbidden}
	case kindBad:
		return resp.Result, &remoteError{resp.Error, ErrBadCommand}
	}
	return resp.Result, errors.New(resp.Error)
}

// handleLocal runs a request on this node, which must be the leader; via
// is who handed it to us (a peer, or this director), for the audit trail.
func (n *Node) handleLocal(ctx context.Context, req rpcRequest, via string) (ApplyResult, error) {
	timeout := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
		if timeout <= 0 {
			return ApplyResult{}, cmp.Or(ctx.Err(), context.DeadlineExceeded)
		}
	}
	switch req.Op {
	case opApply:
		c, err := DecodeCommand(req.Cmd)
		if err != nil {
			return ApplyResult{}, err
		}
		if c.Type == CmdPushConfig && n.cfg.Validate != nil {
			if _, done := n.fsm.pushed(c.Push.PushID); !done {
				if err := n.cfg.Validate(c.Push.Source, []byte(c.Push.Text)); err != nil {
					return ApplyResult{}, err
				}
			}
		}
		f := n.raft.Apply(req.Cmd, timeout)
		if err := f.Error(); err != nil {
			return ApplyResult{}, fmt.Errorf("commit %s: %w", c.Type, err)
		}
		res, _ := f.Response().(ApplyResult)
		if c.Type == CmdPushConfig || c.Type == CmdRollback {
			n.log.Info("audit: configuration committed", "type", c.Type, "version", res.Version, "duplicate", res.Duplicate,
				"pushed_by", pushedByOf(c), "caller", req.Caller, "via", via)
		}
		return res, nil
	case opJoin:
		if err := req.validate(); err != nil {
			return ApplyResult{}, err
		}
		cf := n.raft.GetConfiguration()
		if err := cf.Error(); err != nil {
			return ApplyResult{}, fmt.Errorf("read raft configuration: %w", err)
		}
		for _, s := range cf.Configuration().Servers {
			if s.ID == raft.ServerID(req.ID) && s.Address == raft.ServerAddress(req.Addr) && s.Suffrage == raft.Voter {
				return ApplyResult{}, nil
			}
		}
		n.log.Info("audit: adding director to the raft cluster", "peer", req.ID, "addr", req.Addr, "caller", req.Caller, "via", via)
		if err := n.raft.AddVoter(raft.ServerID(req.ID), raft.ServerAddress(req.Addr), 0, timeout).Error(); err != nil {
			return ApplyResult{}, fmt.Errorf("add voter %s: %w", req.ID, err)
		}
		n.recordMembership(MemberJoin, req, via, timeout)
		return ApplyResult{}, nil
	case opRemove:
		cf := n.raft.GetConfiguration()
		if err := cf.Error(); err != nil {
			return ApplyResult{}, fmt.Errorf("read raft configuration: %w", err)
		}
		found := false
		for _, s := range cf.Configuration().Servers {
			found = found || s.ID == raft.ServerID(req.ID)
		}
		if !found {
			return ApplyResult{}, fmt.Errorf("remove %q: %w", req.ID, ErrNotMember)
		}
		n.log.Info("audit: removing director from the raft cluster", "peer", req.ID, "caller", req.Caller, "via", via)
		if err := n.raft.RemoveServer(raft.ServerID(req.ID), 0, timeout).Error(); err != nil {
			return ApplyResult{}, fmt.Errorf("remove server %s: %w", req.ID, err)
		}
		n.recordMembership(MemberRemove, req, via, timeout)
		return ApplyResult{}, nil
	}
	return ApplyResult{}, fmt.Errorf("%w %q", errUnknownOp, req.Op)
}

// leaderDo runs req on the leader: here when this node leads, else
// forwarded. Leader changes are retried until ctx ends; the commands are
// idempotent (push ids, absolute reports), so a retry never applies twice.
func (n *Node) leaderDo(ctx context.Context, req rpcRequest) (ApplyResult, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	var last error
	for attempt := 0; ; attempt++ {
		if n.isClosed() {
			return ApplyResult{}, ErrClosed
		}
		var res ApplyResult
		var err error
		if n.raft.State() == raft.Leader {
			res, err = n.handleLocal(ctx, req, "director "+n.cfg.NodeName+" (leader)")
		} else if addr, _ := n.raft.LeaderWithID(); addr != "" {
			// Bound each attempt, so a leader that hangs or dies mid-call is
			// given up on while there is still time to retry with the next.
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			res, err = n.callRPC(actx, string(addr), req)
			cancel()
		} else {
			err = ErrNoLeader
		}
		if attempt > 0 && req.Op == opRemove && errors.Is(err, ErrNotMember) {
			// An earlier attempt removed it but its reply was lost.
			return res, nil
		}
		if err != nil && attempt == 0 {
			n.log.Debug("leader request failed; retrying", "op", req.Op, "err", err)
		}
		if err == nil || !retryable(err) {
			return res, err
		}
		last = err
		select {
		case <-ctx.Done():
			if last == nil || errors.Is(last, ErrNoLeader) {
				return ApplyResult{}, fmt.Errorf("%w (is a majority of the directors up?): %w", ErrNoLeader, ctx.Err())
			}
			return ApplyResult{}, fmt.Errorf("%w: gave up (%w); last error: %w", ErrNoLeader, ctx.Err(), last)
		case <-n.closed:
			return ApplyResult{}, ErrClosed
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// retryable: everything but a refusal that a new attempt cannot change
// (invalid configuration, unknown director, malformed command).
func retryable(err error) bool {
	var ve *ValidationError
	return !errors.As(err, &ve) && !errors.Is(err, ErrNotMember) && !errors.Is(err, ErrBadCommand) && !errors.Is(err, errUnknownOp) &&
		!errors.Is(err, ErrForbidden)
}

var errUnknownOp = errors.New("unknown cluster rpc op")

var errRPCIO = errors.New("cluster rpc i/o")

// rpcConn is a kept connection to a peer's RPC service.
type rpcConn struct {
	c  net.Conn
	br *bufio.Reader
}

// maxIdleRPC bounds the kept connections per peer.
const maxIdleRPC = 4

func (n *Node) getRPCConn(addr string, timeout time.Duration) (*rpcConn, bool, error) {
	n.rpcMu.Lock()
	if list := n.rpcIdle[addr]; len(list) > 0 {
		rc := list[len(list)-1]
		n.rpcIdle[addr] = list[:len(list)-1]
		n.rpcMu.Unlock()
		return rc, true, nil
	}
	n.rpcMu.Unlock()
	c, err := n.mux.dial(addr, connRPC, timeout)
	if err != nil {
		return nil, false, err
	}
	return &rpcConn{c: c, br: bufio.NewReader(c)}, false, nil
}

func (n *Node) putRPCConn(addr string, rc *rpcConn) {
	n.rpcMu.Lock()
	defer n.rpcMu.Unlock()
	if n.rpcIdle == nil {
		n.rpcIdle = map[string][]*rpcConn{}
	}
	if len(n.rpcIdle[addr]) >= maxIdleRPC || n.isClosed() {
		rc.c.Close()
		return
	}
	n.rpcIdle[addr] = append(n.rpcIdle[addr], rc)
}

func (n *Node) closeRPCConns() {
	n.rpcMu.Lock()
	defer n.rpcMu.Unlock()
	for _, list := range n.rpcIdle {
		for _, rc := range list {
			rc.c.Close()
		}
	}
	n.rpcIdle = nil
}

// callRPC sends one request to the node at addr (its Raft port), on a kept
// connection when there is one (a stale one is replaced by a fresh dial).
func (n *Node) callRPC(ctx context.Context, addr string, req rpcRequest) (ApplyResult, error) {
	resp, err := n.exchange(ctx, addr, req)
	if err != nil {
		return ApplyResult{}, err
	}
	return fromResponse(resp)
}

// exchange is callRPC's round trip: the peer's response as it came.
func (n *Node) exchange(ctx context.Context, addr string, req rpcRequest) (rpcResponse, error) {
	for {
		timeout := 5 * time.Second
		if dl, ok := ctx.Deadline(); ok {
			timeout = time.Until(dl)
			if timeout <= 0 {
				// Past the deadline, ctx's own timer may not have fired
				// yet: never report that as success.
				return rpcResponse{}, cmp.Or(ctx.Err(), context.DeadlineExceeded)
			}
		}
		rc, reused, err := n.getRPCConn(addr, timeout)
		if err != nil {
			return rpcResponse{}, fmt.Errorf("forward %s to %s: %w", req.Op, addr, err)
		}
		_ = rc.c.SetDeadline(time.Now().Add(timeout))
		var resp rpcResponse
		err = writeFrame(rc.c, req)
		if err == nil {
			err = readFrame(rc.br, &resp)
		}
		if err != nil {
			rc.c.Close()
			if reused && ctx.Err() == nil {
				// A kept connection the peer had closed (restart, idle
				// timeout): try a fresh one. Sending again is safe: every
				// command is idempotent.
				continue
			}
			return rpcResponse{}, fmt.Errorf("forward %s to %s: %w: %v", req.Op, addr, errRPCIO, err)
		}
		_ = rc.c.SetDeadline(time.Time{})
		n.putRPCConn(addr, rc)
		return resp, nil
	}
}
