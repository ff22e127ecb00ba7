package checks

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestConcurrentFor(t *testing.T) {
	tests := []struct {
		nofile uint64
		want   int
	}{
		{1024, minConcurrent}, // a tiny limit still checks
		{fdReserve + minConcurrent, minConcurrent},
		{20000, 20000 - fdReserve},    // this lab machine's
		{524288, 524288 - fdReserve},  // systemd's default hard limit
		{unix.RLIM_INFINITY, 1 << 20}, // unlimited: capped
	}
	for _, tt := range tests {
		if got := concurrentFor(tt.nofile); got != tt.want {
			t.Errorf("concurrentFor(%d) = %d, want %d", tt.nofile, got, tt.want)
		}
	}
}

func TestRaiseFileLimit(t *testing.T) {
	var orig unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	if orig.Max != unix.RLIM_INFINITY && orig.Max < 4000 {
		t.Skipf("hard file limit %d: too low to lower and raise", orig.Max)
	}
	t.Cleanup(func() { setFileLimit(&orig) })
	if err := setFileLimit(&unix.Rlimit{Cur: 2000, Max: orig.Max}); err != nil {
		t.Fatal(err)
	}
	soft := func() uint64 {
		var rl unix.Rlimit
		unix.Getrlimit(unix.RLIMIT_NOFILE, &rl)
		return rl.Cur
	}
	if got := raiseFileLimit(1500); got != 1500+fdReserve || soft() != got {
		t.Errorf("raiseFileLimit(1500) = %d (soft limit %d), want %d", got, soft(), 1500+fdReserve)
	}
	if got := raiseFileLimit(10); got != 1500+fdReserve || soft() != got {
		t.Errorf("raiseFileLimit(10) = %d (soft limit %d): lowered, want it kept at %d", got, soft(), 1500+fdReserve)
	}
	if orig.Max == unix.RLIM_INFINITY {
		return
	}
	// Beyond the hard limit: raised with it where allowed (root), to it
	// otherwise.
	if got := raiseFileLimit(int(orig.Max)); got < orig.Max || soft() != got {
		t.Errorf("raiseFileLimit(hard limit) = %d (soft limit %d), want at least the hard limit %d", got, soft(), orig.Max)
	}
}
