package api

import (
	"context"
	"fmt"
	"net"
	"os/user"
	"strconv"
)

// Caller is who made an API request, as the server established it (not
// as the client claims): the unix socket peer's credentials from the
// kernel (SO_PEERCRED), or the TCP client's verified certificate.
type Caller struct {
	// Transport is "unix", "tls", or "" when the handler is served by a
	// listener of the embedder's own (Server.Handler).
	Transport string `json:"transport"`
	UID       int    `json:"uid,omitempty"`
	GID       int    `json:"gid,omitempty"`
	PID       int    `json:"pid,omitempty"`
	User      string `json:"user,omitempty"`
	// Subject is the client certificate's common name (tls).
	Subject string `json:"subject,omitempty"`
	Addr    string `json:"addr,omitempty"`
}

func (c Caller) String() string {
	switch c.Transport {
	case "unix":
		who := "uid " + strconv.Itoa(c.UID)
		if c.User != "" {
			who += " (" + c.User + ")"
		}
		return fmt.Sprintf("%s pid %d via the unix socket", who, c.PID)
	case "tls":
		return fmt.Sprintf("client certificate %q from %s via the TCP API", c.Subject, c.Addr)
	}
	return "an unidentified caller"
}

type callerKey struct{}

// WithCaller returns ctx carrying c (the server does this for every
// request; tests and embedders may too).
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the request's caller, as the server established it.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// connCaller is the connection's identity, or why there is none, kept in
// the connection's context by ConnContext.
type connCaller struct {
	c   Caller
	err error
}

type connCallerKey struct{}

// unixCaller reads a unix socket peer's credentials.
func unixCaller(c *net.UnixConn) (Caller, error) {
	uid, gid, pid, err := peerCred(c)
	if err != nil {
		return Caller{}, fmt.Errorf("read the API socket peer's credentials: %w", err)
	}
	cl := Caller{Transport: "unix", UID: uid, GID: gid, PID: pid}
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		cl.User = u.Username
	}
	return cl, nil
}
