package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"log/syslog"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// gateWriter blocks every Write until the gate opens: a stalled terminal,
// pipe or syslog daemon.
type gateWriter struct {
	gate chan struct{}
	mu   sync.Mutex
	buf  bytes.Buffer
}

func (w *gateWriter) Write(p []byte) (int, error) {
	<-w.gate
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *gateWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestAsyncHandler: logging never waits for the output; what does not fit
// the queue while the output is stalled is dropped and reported as a
// count; what is written keeps its order, attributes and groups.
func TestAsyncHandler(t *testing.T) {
	tests := []struct {
		name    string
		stalled bool // the output blocks until every record was logged
		records int
		queue   int
	}{
		{"output keeps up", false, 50, 64},
		{"output stalled, queue holds all", true, 50, 64},
		{"output stalled, records dropped", true, 500, 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &gateWriter{gate: make(chan struct{})}
			if !tt.stalled {
				close(w.gate)
			}
			ah := newAsyncHandler(slog.NewTextHandler(w, nil), tt.queue)
			log := slog.New(ah).With("subsystem", "vrrp").WithGroup("g")
			logged := make(chan struct{})
			go func() {
				defer close(logged)
				for i := 0; i < tt.records; i++ {
					log.Info("rec", "i", i)
				}
			}()
			// A blocked Handle would hang here until the deadline.
			select {
			case <-logged:
			case <-time.After(30 * time.Second):
				t.Fatal("logging blocked on a stalled output")
			}
			if tt.stalled {
				close(w.gate)
			}
			ah.close(30 * time.Second)

			out := w.String()
			recRe := regexp.MustCompile(`msg=rec subsystem=vrrp g\.i=(\d+)`)
			var got []int
			for _, m := range recRe.FindAllStringSubmatch(out, -1) {
				n, _ := strconv.Atoi(m[1])
				got = append(got, n)
			}
			for i := 1; i < len(got); i++ {
				if got[i] <= got[i-1] {
					t.Fatalf("records out of order: %v", got)
				}
			}
			reported := 0
			for _, m := range regexp.MustCompile(`log records dropped.* dropped=(\d+)`).FindAllStringSubmatch(out, -1) {
				n, _ := strconv.Atoi(m[1])
				reported += n
			}
			if len(got)+reported != tt.records || uint64(reported) != ah.dropped() {
				t.Fatalf("%d records written + %d reported dropped (counter %d), want %d in all; output:\n%s",
					len(got), reported, ah.dropped(), tt.records, out)
			}
			wantDrops := tt.records > tt.queue+1 // the writer may hold one besides the queue
			if (reported > 0) != wantDrops {
				t.Fatalf("%d dropped, want drops: %v", reported, wantDrops)
			}
		})
	}
}

// stepWriter lets the test hold the writer inside one Write.
type stepWriter struct {
	syncWriter
	entered chan string   // each record as its Write starts
	release chan struct{} // each Write waits for one
}

func (w *stepWriter) Write(p []byte) (int, error) {
	w.entered <- string(p)
	<-w.release
	return w.syncWriter.Write(p)
}

// TestAsyncHandlerBatches: a record logged while the writer is writing
// the batch before it, after an earlier round emptied the queue, is
// written once and in order (the writer's two buffers change hands each
// round; one both queued into and being written lost records, or wrote
// an empty one and panicked).
func TestAsyncHandlerBatches(t *testing.T) {
	var buf strings.Builder
	w := &stepWriter{syncWriter: syncWriter{b: &buf}, entered: make(chan string), release: make(chan struct{})}
	ah := newAsyncHandler(slog.NewTextHandler(w, nil), 64)
	log := slog.New(ah)
	step := func(want string) {
		t.Helper()
		select {
		case got := <-w.entered:
			if !strings.Contains(got, "msg="+want) {
				t.Fatalf("writing %q, want %s", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s never written", want)
		}
	}
	written := func(names ...string) {
		t.Helper()
		for _, n := range names {
			step(n)
			w.release <- struct{}{}
		}
	}
	// A round that leaves the writer a buffer with room for several.
	log.Info("r0")
	step("r0") // held, while three queue behind it
	log.Info("r1")
	log.Info("r2")
	log.Info("r3")
	w.release <- struct{}{}
	written("r1", "r2", "r3")
	time.Sleep(50 * time.Millisecond) // the round ends: the queue is empty
	log.Info("r4")
	step("r4")     // the writer holds r4's batch...
	log.Info("r5") // ...while r5 and r6 are queued
	log.Info("r6")
	w.release <- struct{}{}
	written("r5", "r6")
	ah.close(10 * time.Second)
	var got []string
	for _, m := range regexp.MustCompile(`msg=(r\d)`).FindAllStringSubmatch(buf.String(), -1) {
		got = append(got, m[1])
	}
	if want := "r0 r1 r2 r3 r4 r5 r6"; strings.Join(got, " ") != want {
		t.Fatalf("written %v, want %s", got, want)
	}
}

// TestAsyncHandlerAfterClose: records logged after close are written in
// line, not lost (the daemon's last words at exit).
func TestAsyncHandlerAfterClose(t *testing.T) {
	var buf strings.Builder
	ah := newAsyncHandler(slog.NewTextHandler(&syncWriter{b: &buf}, nil), 8)
	log := slog.New(ah)
	log.Info("before")
	ah.close(10 * time.Second)
	log.Info("after")
	for _, want := range []string{"msg=before", "msg=after"} {
		if !strings.Contains(buf.String(), want) {
			t.Fatalf("%s missing from %q", want, buf.String())
		}
	}
}

type syncWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// syslogSocket is a real unixgram socket standing in for /dev/log; dial
// connects hakeepd's syslog writer to it with log/syslog's own client.
type syslogSocket struct {
	conn   *net.UnixConn
	path   string
	dialed []syslog.Priority // facilities asked for
}

func newSyslogSocket(t *testing.T) *syslogSocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "log")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &syslogSocket{conn: conn, path: path}
}

func (s *syslogSocket) dial(facility syslog.Priority) (*syslog.Writer, error) {
	s.dialed = append(s.dialed, facility)
	return syslog.Dial("unixgram", s.path, facility|syslog.LOG_INFO, "hakeepd")
}

// frame is one syslog datagram: its <PRI> and the rest.
type frame struct {
	pri int
	msg string
}

// read returns the datagrams received until none arrives for a moment
// (the logger is closed first, so everything was sent).
func (s *syslogSocket) read(t *testing.T) []frame {
	t.Helper()
	var out []frame
	buf := make([]byte, 64<<10)
	priRe := regexp.MustCompile(`^<(\d+)>(.*)$`)
	for {
		s.conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := s.conn.Read(buf)
		if err != nil {
			return out
		}
		m := priRe.FindStringSubmatch(strings.TrimRight(string(buf[:n]), "\n"))
		if m == nil {
			t.Fatalf("datagram without an RFC 3164 <PRI>: %q", buf[:n])
		}
		pri, _ := strconv.Atoi(m[1])
		out = append(out, frame{pri, m[2]})
	}
}

// TestSyslogPriorities: each record reaches the syslog socket with PRI =
// facility + the severity of its level, so journalctl -p err and
// rsyslog's severity filters see errors as errors; the facility is
// LOG_DAEMON unless -S n (LOG_LOCALn), as keepalived.
func TestSyslogPriorities(t *testing.T) {
	const (
		user   = 1 << 3  // LOG_USER
		daemon = 3 << 3  // LOG_DAEMON
		local5 = 21 << 3 // LOG_LOCAL5
		local0 = 16 << 3 // LOG_LOCAL0
		local7 = 23 << 3 // LOG_LOCAL7
	)
	levels := []struct {
		level    slog.Level
		severity int
	}{
		{slog.LevelDebug, 7}, // LOG_DEBUG
		{slog.LevelInfo, 6},  // LOG_INFO
		{slog.LevelInfo + 2, 6},
		{slog.LevelWarn, 4},  // LOG_WARNING
		{slog.LevelError, 3}, // LOG_ERR
		{slog.LevelError + 4, 3},
	}
	for _, tc := range []struct {
		name     string
		args     []string
		facility int
	}{
		{"default facility", nil, daemon},
		{"-S daemon", []string{"-S", "daemon"}, daemon},
		{"-S user", []string{"-S", "user"}, user},
		{"-S local5", []string{"-S", "local5"}, local5},
		{"-S 0", []string{"-S", "0"}, local0},
		{"--log-facility 7", []string{"--log-facility", "7"}, local7},
		{"-S 7 with JSON", []string{"-S", "7", "--log-json"}, local7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseFlags(append([]string{"-D"}, tc.args...), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			sock := newSyslogSocket(t)
			var stderr syncBuffer
			log, closeLog, err := buildLogger(o, &stderr, sock.dial)
			if err != nil {
				t.Fatal(err)
			}
			for i, lv := range levels {
				log.With("subsystem", "vrrp").Log(context.Background(), lv.level, "record", "i", i)
			}
			closeLog()
			frames := sock.read(t)
			if len(frames) != len(levels) {
				t.Fatalf("%d datagrams, want %d: %+v", len(frames), len(levels), frames)
			}
			for i, f := range frames {
				if want := tc.facility + levels[i].severity; f.pri != want {
					t.Errorf("record %d (level %v): <PRI> %d, want %d (facility %d + severity %d)", i, levels[i].level, f.pri, want, tc.facility, levels[i].severity)
				}
				if !strings.Contains(f.msg, " hakeepd[") {
					t.Errorf("record %d: no hakeepd tag: %q", i, f.msg)
				}
				body := f.msg[strings.Index(f.msg, "]: ")+3:]
				if o.logJSON {
					var rec map[string]any
					if err := json.Unmarshal([]byte(body), &rec); err != nil {
						t.Fatalf("record %d: not a JSON object: %q: %v", i, body, err)
					}
					if rec["msg"] != "record" || rec["subsystem"] != "vrrp" || rec["i"] != float64(i) {
						t.Errorf("record %d: %v", i, rec)
					}
					if _, ok := rec["time"]; ok {
						t.Errorf("record %d: syslog message carries a second timestamp: %q", i, body)
					}
				} else {
					if want := "msg=record subsystem=vrrp i=" + strconv.Itoa(i); !strings.Contains(body, want) {
						t.Errorf("record %d: %q lacks %q", i, body, want)
					}
					if strings.Contains(body, "time=") {
						t.Errorf("record %d: syslog message carries a second timestamp: %q", i, body)
					}
				}
			}
			if stderr.String() != "" {
				t.Errorf("syslog alone also wrote to stderr: %q", stderr.String())
			}
		})
	}
}

// TestLogOutputs: -l logs to stderr and syslog together, as keepalived;
// -G keeps syslog out (the socket is never dialed); without syslog the
// records still reach stderr.
func TestLogOutputs(t *testing.T) {
	for _, tc := range []struct {
		name        string
		args        []string
		noSocket    bool // syslog dial fails
		wantDial    bool
		wantSyslog  int    // datagrams carrying the record
		wantStderr  string // substring of stderr ("" : stderr stays empty)
		stderrJSONs bool
	}{
		{"syslog only", nil, false, true, 1, "", false},
		{"-l: console and syslog", []string{"-l"}, false, true, 1, "msg=\"reload failed\"", false},
		{"-l -G: console only", []string{"-l", "-G"}, false, false, 0, "level=ERROR msg=\"reload failed\"", false},
		{"-G alone: nowhere", []string{"-G"}, false, false, 0, "", false},
		{"-l --log-json", []string{"-l", "--log-json"}, false, true, 1, `"msg":"reload failed"`, true},
		{"no syslog daemon: stderr", nil, true, true, 0, "syslog unavailable", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseFlags(tc.args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			sock := newSyslogSocket(t)
			dial := sock.dial
			if tc.noSocket {
				dial = func(f syslog.Priority) (*syslog.Writer, error) {
					sock.dialed = append(sock.dialed, f)
					return syslog.Dial("unixgram", filepath.Join(t.TempDir(), "none"), f, "hakeepd")
				}
			}
			var stderr syncBuffer
			log, closeLog, err := buildLogger(o, &stderr, dial)
			if err != nil {
				t.Fatal(err)
			}
			log.Error("reload failed", "err", "boom")
			closeLog()
			if got := len(sock.dialed) > 0; got != tc.wantDial {
				t.Errorf("syslog dialed: %v, want %v", got, tc.wantDial)
			}
			n := 0
			for _, f := range sock.read(t) {
				if strings.Contains(f.msg, "reload failed") {
					n++
				}
			}
			if n != tc.wantSyslog {
				t.Errorf("%d syslog datagrams with the record, want %d", n, tc.wantSyslog)
			}
			out := stderr.String()
			if tc.wantStderr == "" && out != "" || !strings.Contains(out, tc.wantStderr) {
				t.Errorf("stderr %q, want it to contain %q", out, tc.wantStderr)
			}
			if tc.noSocket && !strings.Contains(out, "reload failed") {
				t.Errorf("record lost without syslog: stderr %q", out)
			}
			if tc.stderrJSONs {
				for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
					if !json.Valid([]byte(line)) {
						t.Errorf("stderr line is not JSON: %q", line)
					}
				}
			}
		})
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
