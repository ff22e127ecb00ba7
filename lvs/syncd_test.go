package lvs

import (
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestSyncDaemonEncoding: the NEW_DAEMON / DEL_DAEMON messages, byte for
// byte as keepalived's libipvs builds them (little-endian host).
func TestSyncDaemonEncoding(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("expected bytes are for a little-endian host")
	}
	d := SyncDaemon{State: SyncMaster, Interface: "eth0", SyncID: 7, MaxLen: 1400, Port: 8848, TTL: 2,
		Group: netip.MustParseAddr("224.0.0.81")}
	for _, tc := range []struct {
		name string
		cmd  uint8
		d    SyncDaemon
		want string
	}{
		{"start with every option", cmdNewDaemon, d,
			"54000000 3412 0500 01000000" + // nlmsghdr: len 84, family, REQUEST|ACK, seq 1
				"00000000" + // pid
				"09010000" + // genl: NEW_DAEMON, version 1
				"4000 0300" + // IPVS_CMD_ATTR_DAEMON, 64 bytes
				"0800 0100 01000000" + // state master
				"0900 0200 65746830 00000000" + // "eth0\0", padded
				"0800 0300 07000000" + // sync id 7
				"0600 0400 7805 0000" + // maxlen 1400
				"0600 0700 9022 0000" + // port 8848 (host order, as keepalived's NLA_PUT_U16)
				"0500 0800 02 000000" + // ttl 2
				"0800 0500 e0000051"}, // group 224.0.0.81, network order
		{"start, kernel defaults", cmdNewDaemon, SyncDaemon{State: SyncBackup, Interface: "v0", SyncID: 51},
			"30000000 3412 0500 01000000 00000000" +
				"09010000" +
				"1c00 0300" +
				"0800 0100 02000000" +
				"0700 0200 763000 00" +
				"0800 0300 33000000"},
		{"IPv6 group", cmdNewDaemon, SyncDaemon{State: SyncBackup, Interface: "v0", Group: netip.MustParseAddr("ff02::81")},
			"44000000 3412 0500 01000000 00000000" +
				"09010000" +
				"3000 0300" +
				"0800 0100 02000000" +
				"0700 0200 763000 00" +
				"0800 0300 00000000" +
				"1400 0600 ff020000000000000000000000000081"},
		// keepalived stops a daemon with its state and sync id only.
		{"stop", cmdDelDaemon, d,
			"28000000 3412 0500 01000000 00000000" +
				"0a010000" +
				"1400 0300" +
				"0800 0100 01000000" +
				"0800 0300 07000000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &batchWriter{family: 0x1234}
			w.daemonRequest(tc.cmd, tc.d)
			want, err := hex.DecodeString(strings.ReplaceAll(tc.want, " ", ""))
			if err != nil {
				t.Fatal(err)
			}
			if got := w.buf; hex.EncodeToString(got) != hex.EncodeToString(want) {
				t.Fatalf("\ngot  %x\nwant %x", got, want)
			}
			if tc.cmd != cmdNewDaemon {
				return
			}
			// The kernel answers GET_DAEMON with the same nested layout.
			got, err := decodeDaemon(w.buf[16+4:])
			if err != nil || got != tc.d {
				t.Fatalf("decoded %+v %v, want %+v", got, err, tc.d)
			}
		})
	}
}

// TestKernelSyncDaemon: the daemons start and stop in the kernel, read
// back with IPVS_CMD_GET_DAEMON and with ipvsadm -L --daemon.
func TestKernelSyncDaemon(t *testing.T) {
	ns, path := newNS(t)
	k, err := NewKernel(path, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	defer k.StopSyncDaemon(SyncMaster)
	defer k.StopSyncDaemon(SyncBackup)
	master := SyncDaemon{State: SyncMaster, Interface: "v0", SyncID: 51, MaxLen: 1400, Port: 8850, TTL: 2,
		Group: netip.MustParseAddr("224.0.0.82")}
	backup := SyncDaemon{State: SyncBackup, Interface: "v0", SyncID: 51, MaxLen: 1400, Port: 8850, TTL: 2,
		Group: netip.MustParseAddr("224.0.0.82")}
	steps := []struct {
		name    string
		do      func() error
		want    []SyncDaemon
		ipvsadm []string
	}{
		{"backup", func() error { return k.StartSyncDaemon(backup) }, []SyncDaemon{backup},
			[]string{"backup sync daemon (mcast=v0, syncid=51, maxlen=1400, group=224.0.0.82, port=8850, ttl=2)"}},
		// keepalived's ipvs_syncd_master: stop the backup, start the master.
		{"to master", func() error {
			if err := k.StopSyncDaemon(SyncBackup); err != nil {
				return err
			}
			return k.StartSyncDaemon(master)
		}, []SyncDaemon{master},
			[]string{"master sync daemon (mcast=v0, syncid=51, maxlen=1400, group=224.0.0.82, port=8850, ttl=2)"}},
		{"stopped", func() error { return k.StopSyncDaemon(SyncMaster) }, nil, nil},
		{"stop again is no error", func() error { return k.StopSyncDaemon(SyncMaster) }, nil, nil},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		var got []SyncDaemon
		deadline := time.Now().Add(5 * time.Second)
		for {
			got, err = k.SyncDaemons()
			if err == nil && len(got) == len(st.want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: daemons %+v %v, want %+v", st.name, got, err, st.want)
			}
			time.Sleep(50 * time.Millisecond)
		}
		for i := range got {
			if got[i] != st.want[i] {
				t.Fatalf("%s: daemon %+v, want %+v", st.name, got[i], st.want[i])
			}
		}
		out := strings.TrimSpace(inNS(t, ns, "ipvsadm", "-L", "--daemon"))
		var lines []string
		if out != "" {
			lines = strings.Split(out, "\n")
		}
		if strings.Join(lines, "|") != strings.Join(st.ipvsadm, "|") {
			t.Fatalf("%s: ipvsadm -L --daemon:\n%s\nwant:\n%s", st.name, out, strings.Join(st.ipvsadm, "\n"))
		}
	}
	if err := k.StartSyncDaemon(SyncDaemon{State: SyncBackup, Interface: "nosuchif0"}); err == nil {
		t.Fatal("a daemon on a missing interface was started")
	}
}

// TestMemorySyncDaemon: one daemon per state, as the kernel.
func TestMemorySyncDaemon(t *testing.T) {
	m := NewMemory()
	b := SyncDaemon{State: SyncBackup, Interface: "eth0", SyncID: 1}
	if err := m.StartSyncDaemon(b); err != nil {
		t.Fatal(err)
	}
	if err := m.StartSyncDaemon(b); err == nil {
		t.Fatal("second backup daemon started")
	}
	if err := m.StartSyncDaemon(SyncDaemon{State: SyncMaster, Interface: "eth0"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.SyncDaemons(); len(got) != 2 || got[0].State != SyncMaster {
		t.Fatalf("%+v", got)
	}
	m.StopSyncDaemon(SyncMaster)
	if got, _ := m.SyncDaemons(); len(got) != 1 || got[0] != b {
		t.Fatalf("%+v", got)
	}
}

// FuzzDecodeDaemon: no GET_DAEMON answer makes the decoder panic.
func FuzzDecodeDaemon(f *testing.F) {
	w := &batchWriter{}
	w.daemonRequest(cmdNewDaemon, SyncDaemon{State: SyncMaster, Interface: "eth0", SyncID: 7, MaxLen: 1400, Port: 8848, TTL: 2,
		Group: netip.MustParseAddr("ff02::81")})
	f.Add(w.buf[16+4:])
	f.Add([]byte{8, 0, 3, 0, 4, 0, 2, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeDaemon(b)
	})
}
