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
