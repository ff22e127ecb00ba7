# hakeep: `make demo` (the three-director lab) and `make test` (every test),
# as root on a Debian machine. Go >= 1.26 is taken from PATH or /usr/local/go.
export PATH := $(PATH):/usr/local/go/bin:/usr/sbin:/sbin
GO ?= go
BIN := bin

.PHONY: all build test deps vet test-unit test-race test-ipvs demo bench bench-ipvs fuzz clean

all: build

# The version from git (deploy/version.sh), stamped into both binaries
# (hakeepd --version, hactl version, hakeep_build_info).
VERSION ?= $(shell sh deploy/version.sh)
LDFLAGS := -X hakeep/internal/version.Version=$(VERSION)

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/hakeepd ./cmd/hakeepd
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/hactl ./cmd/hactl

# The Debian package: static binaries, the unit, man pages, completions,
# examples (deploy/nfpm.yaml), built by nfpm run as a pinned Go tool (not
# a go.mod dependency: nothing of hakeep imports it).
NFPM := $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0
DEB_VERSION ?= $(shell sh deploy/version.sh --deb)
ARCH := $(shell $(GO) env GOARCH)
# Fixed, not under $(BIN): deploy/nfpm.yaml names it.
PKGBIN := bin/pkg
DEB := $(BIN)/hakeep_$(DEB_VERSION)_$(ARCH).deb

.PHONY: deb man install
deb: man
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(PKGBIN)/hakeepd ./cmd/hakeepd
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(PKGBIN)/hactl ./cmd/hactl
	rm -f $(BIN)/hakeep_*.deb
	VERSION='$(DEB_VERSION)' ARCH='$(ARCH)' $(NFPM) package -f deploy/nfpm.yaml -p deb -t $(DEB)
	@echo "built $(DEB)"

# Man pages checked (groff warnings are errors) and gzipped for packaging.
MANPAGES := deploy/man/hakeepd.8 deploy/man/hactl.8 deploy/man/hakeep.conf.5
man:
	@mkdir -p $(PKGBIN)/man
	@for m in $(MANPAGES); do \
		w=$$(groff -man -Tutf8 -ww -z $$m 2>&1); [ -z "$$w" ] || { echo "$$m: $$w"; exit 1; }; \
		gzip -9n < $$m > $(PKGBIN)/man/$$(basename $$m).gz; \
	done

# make install [PREFIX=/usr/local] [DESTDIR=...]: what the .deb holds,
# with the unit's paths following PREFIX; /etc/default/hakeepd is never
# overwritten.
PREFIX ?= /usr/local
install: build man
	install -D -m 0755 $(BIN)/hakeepd $(DESTDIR)$(PREFIX)/sbin/hakeepd
	install -D -m 0755 $(BIN)/hactl $(DESTDIR)$(PREFIX)/bin/hactl
	install -d $(DESTDIR)$(PREFIX)/lib/systemd/system
	sed -e 's#/usr/sbin/hakeepd#$(PREFIX)/sbin/hakeepd#' -e 's#/usr/bin/hactl#$(PREFIX)/bin/hactl#' \
		deploy/hakeepd.service > $(DESTDIR)$(PREFIX)/lib/systemd/system/hakeepd.service
	install -D -m 0644 $(PKGBIN)/man/hakeepd.8.gz $(DESTDIR)$(PREFIX)/share/man/man8/hakeepd.8.gz
	install -D -m 0644 $(PKGBIN)/man/hactl.8.gz $(DESTDIR)$(PREFIX)/share/man/man8/hactl.8.gz
	install -D -m 0644 $(PKGBIN)/man/hakeep.conf.5.gz $(DESTDIR)$(PREFIX)/share/man/man5/hakeep.conf.5.gz
	install -D -m 0644 deploy/completion/hactl.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/hactl
	install -D -m 0644 deploy/completion/_hactl $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions/_hactl
	install -D -m 0644 deploy/hakeepd-hardened.conf $(DESTDIR)$(PREFIX)/share/doc/hakeep/examples/hakeepd-hardened.conf
	install -D -m 0644 deploy/keepalived.conf.example $(DESTDIR)$(PREFIX)/share/doc/hakeep/examples/keepalived.conf
	install -D -m 0644 deploy/examples/cluster-3.conf $(DESTDIR)$(PREFIX)/share/doc/hakeep/examples/cluster-3.conf
	[ -e $(DESTDIR)/etc/default/hakeepd ] || install -D -m 0644 deploy/hakeepd.default $(DESTDIR)/etc/default/hakeepd

# Every test: Debian packages first (idempotent), then vet, then the unit and
# namespace-lab tests (root; they skip with a reason otherwise), then the
# packages with goroutines again under the race detector, then the IPVS
# tests inside a qemu VM running Debian's kernel.
test: deps vet test-unit test-race test-ipvs test-deb

deps:
	./deploy/install-test-deps.sh

vet:
	$(GO) vet ./...

# test/overload measures advert timing under a load it makes itself: it
# runs after the other packages, alone, so that their tests are not part
# of the load it measures.
test-unit:
	$(GO) test -count=1 -timeout 15m $$($(GO) list ./... | grep -v '/test/overload$$')
	$(GO) test -count=1 -timeout 10m ./test/overload

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
		-bin /usr/sbin/keepalived -bin /usr/bin/tcpdump \
		-timeout 8m -vm-timeout 20m \
		./internal/vmtest ./lvs ./director ./test/ipvs ./test/reload ./test/cluster ./metrics ./test/overload

.PHONY: test-deb
# The .deb: its contents, man pages (groff -ww), completions and version on
# the host, then dpkg -i in the qemu VM (Debian's dpkg copied in), hakeepd
# run from the installed files in a namespace (-s), hactl status and hactl
# reload against it, dpkg -r and dpkg -P. About 40 s warm.
test-deb: deb
	HAKEEP_DEB=$(abspath $(DEB)) HAKEEP_VERSION=$(VERSION) $(GO) test -count=1 -v -timeout 20m ./test/deb

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
	$(GO) run ./internal/vmtest/cmd/vmtest -mem 4096 -bin /usr/sbin/keepalived -build ./cmd/hakeepd -env HAKEEP_BENCH_KEEPALIVED=1 -env HAKEEP_BENCH_DAEMON=none -run SideBySide -bench . -benchtime 3x ./lvs ./test/ipvs
	$(MAKE) bench-daemons

# keepalived and hakeepd as daemons (test/ipvs TestDaemonSideBySide), one
# VM boot per daemon and run: start and 1% reload to a full kernel table,
# RSS and idle CPU after the reload, medians and ratios. RUNS boots each.
RUNS ?= 1
.PHONY: bench-daemons
bench-daemons:
	$(GO) run ./test/ipvs/benchdaemons -runs $(RUNS)

# The fence's chaos lab (test/fence): random faults (kill -9, SIGSTOP, link
# down, iptables drops, partitions) against three clustered hakeepd for
# DURATION, then a table per scenario (double-owner samples, takeover
# p50/max, moves after heal), with the same instance on three keepalived
# beside the hakeepd ones (same faults, same sampler). Root; about 15 s
# per scenario run.
DURATION ?= 10m
.PHONY: chaos
chaos:
	HAKEEP_FENCE_CHAOS=$(DURATION) HAKEEP_FENCE_SCENARIOS='$(SCENARIOS)' $(GO) test -count=1 -v -timeout 0 -run '^TestFenceChaos$$' ./test/fence

# The fence's fast path (test/fence TestFenceFastPath): takeover after
# kill -9 and after SIGTERM of the owner at advert_int 1 (v2) and 0.1 (v3),
# fenced vs `fence off` vs keepalived in one lab, N trials of each, medians
# from a capture on the bridge. Root; about 6 minutes for N=7.
N ?= 7
.PHONY: fastpath
fastpath:
	HAKEEP_FENCE_FASTPATH=$(N) $(GO) test -count=1 -v -timeout 0 -run '^TestFenceFastPath$$' ./test/fence

# The overload side by side in the VM (BENCHMARKS.md): one daemon per boot.
.PHONY: bench-overload-ipvs
bench-overload-ipvs:
	$(GO) run ./internal/vmtest/cmd/vmtest -bin /usr/sbin/keepalived -bin /usr/bin/tcpdump -build ./cmd/hakeepd \
		-run '^$$' -bench 'OverloadIPVSStorm/hakeepd' -benchtime 1x ./test/overload
	$(GO) run ./internal/vmtest/cmd/vmtest -bin /usr/sbin/keepalived -bin /usr/bin/tcpdump -build ./cmd/hakeepd \
		-run '^$$' -bench 'OverloadIPVSStorm/keepalived-full' -benchtime 1x ./test/overload
