# hakeep: `make demo` (the three-director lab) and `make test` (every test),
# as root on a Debian machine. Go >= 1.26 is taken from PATH or /usr/local/go.
export PATH := $(PATH):/usr/local/go/bin:/usr/sbin:/sbin
GO ?= go
BIN := bin

.PHONY: all build test deps vet test-unit test-race test-ipvs demo bench bench-ipvs fuzz clean

all: build

build:
	$(GO) build -o $(BIN)/hakeepd ./cmd/hakeepd
	$(GO) build -o $(BIN)/hactl ./cmd/hactl

# Every test: Debian packages first (idempotent), then vet, then the unit and
# namespace-lab tests (root; they skip with a reason otherwise), then the
# packages with goroutines again under the race detector, then the IPVS
# tests inside a qemu VM running Debian's kernel.
test: deps vet test-unit test-race test-ipvs

deps:
	./deploy/install-test-deps.sh

vet:
	$(GO) vet ./...

test-unit:
	$(GO) test -count=1 -timeout 15m ./...

# The packages with goroutines under the race detector (it needs cgo: gcc).
# About 90 s on two cores, so no -short.
RACE_PKGS := ./director ./dataplane ./vrrp ./vip ./checks ./lvs ./consensus ./fence \
	./api ./mail ./script ./metrics ./internal/lab
test-race:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 10m $(RACE_PKGS)

# Everything that programs IPVS, daemons included (hakeepd and hactl are
# built into the guest's PATH), in one boot of the VM.
test-ipvs:
	$(GO) run ./internal/vmtest/cmd/vmtest -build ./cmd/hakeepd -build ./cmd/hactl \
		-timeout 5m -vm-timeout 15m \
		./internal/vmtest ./lvs ./director ./test/ipvs ./test/reload ./test/cluster ./metrics

# The example configurations checked (hakeepd -t, as keepalived -t), then
# the three-director lab in network namespaces.
demo: build
	@echo "== hakeepd -t on deploy/examples (keepalived's exit codes: 0 clean, 5 warnings, 1 errors)"
	@for f in deploy/examples/*.conf; do \
		$(BIN)/hakeepd -t -i d1 -f $$f >/dev/null 2>&1; rc=$$?; \
		case $$rc in 0) v=clean;; 5) v="warnings (as keepalived)";; *) v="ERRORS";; esac; \
		case $$f in *seed-004_1.conf) [ $$rc = 1 ] || exit 1; \
			v="refused as expected: the blog lost its last '}' (keepalived warns; a cut-off file is an error here)";; \
		*) [ $$rc = 0 ] || [ $$rc = 5 ] || exit 1;; esac; \
		printf '  %-36s %s\n' "$$f" "$$v"; \
	done
	@echo "== parsed summary of deploy/examples/cluster-3.conf as director d1"
	@$(BIN)/hakeepd -t -i d1 -f deploy/examples/cluster-3.conf | sed 's/^/  /'
	@echo "== three directors in network namespaces"
	$(GO) run ./deploy/demo --hakeepd $(BIN)/hakeepd --hactl $(BIN)/hactl

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Each parser and decoder's fuzz target for a while (go runs one target per
# call); new findings land in the package's testdata/fuzz corpus.
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) -fuzzminimizetime 3s ./config
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME) ./vrrp
	$(GO) test -run '^$$' -fuzz FuzzSplit -fuzztime $(FUZZTIME) ./script
	$(GO) test -run '^$$' -fuzz FuzzDecodeCommand -fuzztime $(FUZZTIME) ./consensus
	$(GO) test -run '^$$' -fuzz FuzzDecodeSnapshot -fuzztime $(FUZZTIME) ./consensus
	$(GO) test -run '^$$' -fuzz FuzzRPCRequest -fuzztime $(FUZZTIME) ./consensus
	$(GO) test -run '^$$' -fuzz FuzzAPIBody -fuzztime $(FUZZTIME) ./api
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME) ./lvs
	$(GO) test -run '^$$' -fuzz FuzzReadHTTPResponse -fuzztime $(FUZZTIME) ./checks
	$(GO) test -run '^$$' -fuzz FuzzCheckDNSReply -fuzztime $(FUZZTIME) ./checks
	$(GO) test -run '^$$' -fuzz FuzzCheckUDPReply -fuzztime $(FUZZTIME) ./checks
	$(GO) test -run '^$$' -fuzz FuzzReadPcap -fuzztime $(FUZZTIME) ./internal/lab

clean:
	rm -rf $(BIN)

# IPVS benchmarks in the VM, keepalived side by side (see BENCHMARKS.md).
bench-ipvs:
	$(GO) run ./internal/vmtest/cmd/vmtest -mem 4096 -bin /usr/sbin/keepalived -build ./cmd/hakeepd -env HAKEEP_BENCH_KEEPALIVED=1 -run SideBySide -bench . -benchtime 3x ./lvs ./test/ipvs

# The fence's chaos lab (test/fence): random faults (kill -9, SIGSTOP, link
# down, iptables drops, partitions) against three clustered hakeepd for
# DURATION, then a table per scenario (double-owner samples, takeover
# p50/max, moves after heal). Root; about 15 s per scenario run.
DURATION ?= 10m
.PHONY: chaos
chaos:
	HAKEEP_FENCE_CHAOS=$(DURATION) HAKEEP_FENCE_SCENARIOS='$(SCENARIOS)' $(GO) test -count=1 -v -timeout 0 -run '^TestFenceChaos$$' ./test/fence
