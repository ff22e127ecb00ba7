package lvs

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

func stateKeysN(from, n int) map[ServiceKey]bool {
	owned := map[ServiceKey]bool{}
	for i := from; i < from+n; i++ {
		owned[ServiceKey{Family: AFInet, Proto: ProtoTCP, Addr: netip.AddrFrom4([4]byte{10, 100, byte(i >> 8), byte(i)}), Port: 80}] = true
	}
	return owned
}

// BenchmarkWriteState: the state file of 2,000 services, which a reload
// that adds a service writes before its first kernel change: written
// whole (start) and by a reload that moves 20 services out and 20 in.
func BenchmarkWriteState(b *testing.B) {
	path := filepath.Join(b.TempDir(), StateFileName)
	if dir, err := os.MkdirTemp("/dev/shm", "state"); err == nil { // tmpfs, as /run
		defer os.RemoveAll(dir)
		path = filepath.Join(dir, StateFileName)
	}
	sets := []map[ServiceKey]bool{stateKeysN(0, 2000), stateKeysN(20, 2000)}
	b.Run("whole", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := writeState(path, sets[0]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reload", func(b *testing.B) {
		var st stateText
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			if err := st.write(path, sets[i%2]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
