package consensus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/hashicorp/raft"
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
}

type rpcResponse struct {
	Result ApplyResult `json:"result"`
	Error  string      `json:"error,omitempty"`
	// Kind classifies Error so the caller can rebuild a sentinel.
	Kind        string   `json:"kind,omitempty"`
	Diagnostics []string `json:"diagnostics,omitempty"`
}

// Error kinds carried over RPC.
const (
	kindNotLeader = "not_leader"
	kindInvalid   = "invalid"
	kindNotMember = "not_member"
	kindOther     = "error"
)

// serveRPC handles one RPC connection from a peer.
func (n *Node) serveRPC(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	var req rpcRequest
	if err := json.NewDecoder(io.LimitReader(c, maxRPCBody)).Decode(&req); err != nil {
		n.log.Warn("bad cluster rpc request", "remote", c.RemoteAddr().String(), "err", err)
		return
	}
	var resp rpcResponse
	if n.raft.State() != raft.Leader {
		addr, _ := n.raft.LeaderWithID()
		if req.Forwarded || addr == "" {
			resp = rpcResponse{Kind: kindNotLeader, Error: "not the leader"}
		} else {
			// A peer that does not know the leader (a joining director)
			// asked us: pass it on once.
			req.Forwarded = true
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			res, err := n.callRPC(ctx, string(addr), req)
			cancel()
			resp = toResponse(res, err)
		}
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := n.handleLocal(ctx, req)
		cancel()
		resp = toResponse(res, err)
	}
	if err := json.NewEncoder(c).Encode(resp); err != nil {
		n.log.Debug("cluster rpc reply failed", "err", err)
	}
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
	default:
		resp.Kind = kindOther
	}
	return resp
}

func fromResponse(resp rpcResponse) (ApplyResult, error) {
	switch resp.Kind {
	case "":
		return resp.Result, nil
	case kindInvalid:
		return resp.Result, &ValidationError{Diagnostics: resp.Diagnostics}
	case kindNotLeader:
		return resp.Result, fmt.Errorf("%s: %w", resp.Error, raft.ErrNotLeader)
	case kindNotMember:
		return resp.Result, fmt.Errorf("%s: %w", resp.Error, ErrNotMember)
	}
	return resp.Result, errors.New(resp.Error)
}

// handleLocal runs a request on this node, which must be the leader.
func (n *Node) handleLocal(ctx context.Context, req rpcRequest) (ApplyResult, error) {
	timeout := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
		if timeout <= 0 {
			return ApplyResult{}, ctx.Err()
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
		return res, nil
	case opJoin:
		if req.ID == "" || req.Addr == "" {
			return ApplyResult{}, errors.New("join: needs node id and raft address")
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
		n.log.Info("adding director to the raft cluster", "peer", req.ID, "addr", req.Addr)
		if err := n.raft.AddVoter(raft.ServerID(req.ID), raft.ServerAddress(req.Addr), 0, timeout).Error(); err != nil {
			return ApplyResult{}, fmt.Errorf("add voter %s: %w", req.ID, err)
		}
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
		n.log.Info("removing director from the raft cluster", "peer", req.ID)
		if err := n.raft.RemoveServer(raft.ServerID(req.ID), 0, timeout).Error(); err != nil {
			return ApplyResult{}, fmt.Errorf("remove server %s: %w", req.ID, err)
		}
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
			res, err = n.handleLocal(ctx, req)
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
	return !errors.As(err, &ve) && !errors.Is(err, ErrNotMember) && !errors.Is(err, ErrBadCommand) && !errors.Is(err, errUnknownOp)
}

var errUnknownOp = errors.New("unknown cluster rpc op")

var errRPCIO = errors.New("cluster rpc i/o")

// callRPC sends one request to the node at addr (its Raft port).
func (n *Node) callRPC(ctx context.Context, addr string, req rpcRequest) (ApplyResult, error) {
	timeout := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
		if timeout <= 0 {
			return ApplyResult{}, ctx.Err()
		}
	}
	c, err := n.mux.dial(addr, connRPC, timeout)
	if err != nil {
		return ApplyResult{}, fmt.Errorf("forward %s to %s: %w", req.Op, addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return ApplyResult{}, fmt.Errorf("forward %s to %s: %w: %v", req.Op, addr, errRPCIO, err)
	}
	var resp rpcResponse
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return ApplyResult{}, fmt.Errorf("forward %s to %s: %w: %v", req.Op, addr, errRPCIO, err)
	}
	return fromResponse(resp)
}
