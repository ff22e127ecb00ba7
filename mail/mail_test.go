package mail

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"hakeep/config"
)

const python = "/usr/bin/python3" // Debian's, where python3-aiosmtpd lives

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// requireSMTPD skips unless aiosmtpd is installed; tests that queue mail
// before starting the server call it first, so a skip does not wait for
// the queue's retries to run out.
func requireSMTPD(t *testing.T) {
	t.Helper()
	if err := exec.Command(python, "-c", "import aiosmtpd").Run(); err != nil {
		t.Skip("python3-aiosmtpd not installed (see deploy/test-deps.txt)")
	}
}

// startSMTPD runs a real SMTP server (aiosmtpd, Maildir handler) on port
// and returns the Maildir's new/ directory.
func startSMTPD(t *testing.T, port int) (maildirNew string, stop func()) {
	t.Helper()
	requireSMTPD(t)
	dir := t.TempDir()
	md := filepath.Join(dir, "Maildir")
	logf, _ := os.Create(filepath.Join(dir, "smtpd.log"))
	cmd := exec.Command(python, "-m", "aiosmtpd", "-n", "-l", fmt.Sprintf("127.0.0.1:%d", port),
		"-c", "aiosmtpd.handlers.Mailbox", md)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logf.Close()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
		}
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "smtpd.log"))
			t.Fatalf("aiosmtpd never listened: %s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return filepath.Join(md, "new"), stop
}

// waitMail polls the Maildir for n messages and returns them.
func waitMail(t *testing.T, dir string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ents, _ := os.ReadDir(dir)
		if len(ents) >= n {
			var out []string
			for _, e := range ents {
				b, err := os.ReadFile(filepath.Join(dir, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, string(b))
			}
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages delivered", len(ents), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestDeliveryToRealSMTPServer(t *testing.T) {
	port := freePort(t)
	box, _ := startSMTPD(t, port)
	c, err := New(Config{
		To: []string{"ops@example.com", "noc@example.com"}, From: "lvs@example.com",
		Server: fmt.Sprintf("127.0.0.1:%d", port), HeloName: "director1", Logger: quietLog(),
		Now: func() time.Time { return time.Date(2026, 11, 22, 3, 4, 5, 0, time.UTC) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	c.Alert("[LVS_DEVEL] Realserver [10.0.0.7]:tcp:80 of virtual server [10.0.0.1]:tcp:80 - DOWN",
		"=> TCP CHECK failed on service <=\r\n.leading dot line")
	msgs := waitMail(t, box, 1)
	m := msgs[0]
	for _, want := range []string{
		"Subject: [LVS_DEVEL] Realserver [10.0.0.7]:tcp:80 of virtual server [10.0.0.1]:tcp:80 - DOWN\n",
		"From: lvs@example.com\n",
		"To: ops@example.com, noc@example.com\n",
		"X-Mailer: Keepalived\n",
		"Date: Sun, 22 Nov 2026 03:04:05 +0000\n",
		"X-MailFrom: lvs@example.com\n",
		"X-RcptTo: ops@example.com, noc@example.com\n",
		"\n=> TCP CHECK failed on service <=\n.leading dot line\n",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("message lacks %q:\n%s", want, m)
		}
	}
	// The server files the message before the client has finished the
	// session and counted it: poll.
	deadline := time.Now().Add(10 * time.Second)
	for {
		sent, dropped := c.Stats()
		if sent == 1 && dropped == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sent %d dropped %d", sent, dropped)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRetriesUntilServerComesUp(t *testing.T) {
	requireSMTPD(t)
	port := freePort(t)
	c, err := New(Config{
		To: []string{"ops@example.com"}, Server: fmt.Sprintf("127.0.0.1:%d", port),
		Backoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Attempts: 1000, Logger: quietLog(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	c.Alert("[r1] VRRP Instance VI_1 - Entering MASTER state", "=> VRRP Instance is now owning VRRP VIPs <=")
	c.Alert("[r1] VRRP Instance VI_1 - Entering BACKUP state", "=> VRRP Instance is nolonger owning VRRP VIPs <=")
	// Nothing listens yet: deliveries fail and are retried.
	box, _ := startSMTPD(t, port)
	msgs := waitMail(t, box, 2)
	joined := strings.Join(msgs, "\n")
	if !strings.Contains(joined, "Entering MASTER state") || !strings.Contains(joined, "Entering BACKUP state") {
		t.Fatal(joined)
	}
}

func TestFullQueueDropsWithoutBlocking(t *testing.T) {
	// A server that accepts and never greets keeps the worker busy.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	c, err := New(Config{To: []string{"a@b"}, Server: l.Addr().String(), QueueSize: 3, Timeout: time.Minute, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	c.Alert("first", "")
	conn := <-accepted // the worker is now stuck in the first delivery
	defer conn.Close()
	for i := 0; i < 8; i++ {
		c.Alert(fmt.Sprint("alert ", i), "")
	}
	if sent, dropped := c.Stats(); sent != 0 || dropped != 5 {
		t.Fatalf("sent %d dropped %d, want 0 and 5", sent, dropped)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	c.Close(ctx) // gives up on the stuck delivery
	if _, dropped := c.Stats(); dropped < 6 {
		t.Fatalf("dropped %d after close", dropped)
	}
}

func TestFormatAndConfig(t *testing.T) {
	b := string(Format("f@x", []string{"a@x"}, "s\r\nBcc: evil@x", "l1\nl2", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)))
	want := "Date: Fri, 02 Jan 2026 03:04:05 +0000\r\nFrom: f@x\r\nSubject: s  Bcc: evil@x\r\nX-Mailer: Keepalived\r\nTo: a@x\r\n\r\nl1\r\nl2\r\n"
	if b != want {
		t.Fatalf("%q", b)
	}
	if _, err := New(Config{Server: "x"}); err == nil {
		t.Fatal("no recipients accepted")
	}
	if _, err := New(Config{To: []string{"a@b>\r\nRCPT TO:<x"}, Server: "x"}); err == nil {
		t.Fatal("bad address accepted")
	}
	g := &config.GlobalDefs{NotificationEmail: []string{"a@b"}, NotificationEmailFrom: "f@b",
		SMTPServer: &config.SMTPServer{Host: "192.168.200.1", Port: 0}, SMTPConnectTimeout: 30 * time.Second}
	c, ok := FromConfig(g)
	if !ok || c.Server != "192.168.200.1:25" || c.Timeout != 30*time.Second || c.From != "f@b" {
		t.Fatalf("%+v", c)
	}
	if _, ok := FromConfig(&config.GlobalDefs{}); ok {
		t.Fatal("mail enabled without settings")
	}
}
