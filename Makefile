# loopbreaker: `make run` starts the daemon on its defaults, `make test` runs
# the whole suite (installing what it needs on Debian first).

GO      ?= go
BIN     ?= bin/loopbreaker
ARGS    ?=
PKGS    ?= ./...
TESTFLAGS ?= -race -count=1 -timeout 14m

PREFIX  ?= /usr/local
DESTDIR ?=

.PHONY: all build run test deps vet fmt-check unit clean bench demo install soak man deb image

all: build

# -buildvcs=auto records the git commit (loopbreaker version) even where
# GOFLAGS says -buildvcs=false; go records none in a git worktree.
BUILDVCS ?= auto

build:
	$(GO) build -buildvcs=$(BUILDVCS) -o $(BIN) ./cmd/loopbreaker

# The man pages loopbreaker(8) and loopbreaker.toml(5), written by the
# binary from its commands' help and the built-in policy's comments:
# man -l bin/man/loopbreaker.8
man: build
	mkdir -p $(dir $(BIN))man
	$(abspath $(BIN)) man 8 > $(dir $(BIN))man/loopbreaker.8
	$(abspath $(BIN)) man 5 > $(dir $(BIN))man/loopbreaker.toml.5

# The daemon with the built-in policy and the state file under ./var/.
# Pass flags with ARGS, e.g. make run ARGS="-local-domains corp.example -quarantine-mailbox quarantine@corp.example".
run: build
	mkdir -p var
	./$(BIN) serve -state ./var/loopbreaker.db $(ARGS)

# What the tests need from Debian (postfix, swaks, ...), installed when missing.
deps:
	bash scripts/deps.sh

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "not gofmt-ed:"; echo "$$out"; exit 1; fi

# The whole suite: unit tests, the milter protocol tests and the end-to-end
# tests against a real Postfix.
test: deps fmt-check vet
	$(GO) test $(TESTFLAGS) $(PKGS)

# Unit tests only (no Postfix needed; the end-to-end tests skip).
unit:
	$(GO) test -short $(TESTFLAGS) $(PKGS)

# Installs the daemon, the systemd unit, the man pages and (if absent) the default policy
# as /etc/loopbreaker/policy.toml, and creates the loopbreaker system user.
# Then: systemctl daemon-reload && systemctl enable --now loopbreaker.
# It builds nothing when bin/loopbreaker is there (make build as yourself,
# then sudo make install); otherwise it looks for the Go toolchain on PATH and
# in /usr/local/go/bin, which sudo's secure_path drops.
GO_FOR_INSTALL = $(shell command -v $(GO) 2>/dev/null || { test -x /usr/local/go/bin/go && echo /usr/local/go/bin/go; })
install:
	@if [ ! -x $(BIN) ]; then \
		if [ -z "$(GO_FOR_INSTALL)" ]; then echo "no $(BIN) and no Go toolchain found: run make build as yourself first" >&2; exit 1; fi; \
		$(GO_FOR_INSTALL) build -o $(BIN) ./cmd/loopbreaker; fi
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/sbin/loopbreaker
	install -D -m 0644 cmd/loopbreaker/dist/loopbreaker.service $(DESTDIR)/etc/systemd/system/loopbreaker.service
	install -D -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/loopbreaker/README.md
	install -d -m 0755 $(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(PREFIX)/share/man/man5
	$(abspath $(BIN)) man 8 > $(DESTDIR)$(PREFIX)/share/man/man8/loopbreaker.8
	$(abspath $(BIN)) man 5 > $(DESTDIR)$(PREFIX)/share/man/man5/loopbreaker.toml.5
	install -d -m 0755 $(DESTDIR)/etc/loopbreaker
	test -e $(DESTDIR)/etc/loopbreaker/policy.toml || $(abspath $(BIN)) default-policy > $(DESTDIR)/etc/loopbreaker/policy.toml
	@if [ -z "$(DESTDIR)" ] && ! getent passwd loopbreaker >/dev/null; then \
		useradd --system --home-dir /var/lib/loopbreaker --shell /usr/sbin/nologin loopbreaker; fi
	@echo "installed; now: systemctl daemon-reload && systemctl enable --now loopbreaker"

# Benchmarks (not part of test): loopbreaker side by side with a
# pass-through milter and with no milter, in one run; prints Markdown
# tables (docs/benchmarks.md). Needs root and Postfix (deps installs it);
# deps.sh --bench adds rspamd, the peer, which make test does not need.
# Pass lbbench flags with BENCHFLAGS, e.g. BENCHFLAGS="-sections scale".
BENCHFLAGS ?=
bench: deps
	bash scripts/deps.sh --bench
	$(GO) run ./testenv/bench/cmd/lbbench $(BENCHFLAGS)

# Soak (not part of test): 30 minutes of mixed ordinary and storm mail
# through a real Postfix and the daemon at 80% of what Postfix alone
# sustains here (measured first, in the same run); samples the daemon's RSS
# and goroutines every 30 s and accounts for every message. Needs root.
# SOAKFLAGS="-duration 5m" shortens it; LB_SOAK=60s go test ./testenv/soak
# runs a one-minute version as a test.
SOAKFLAGS ?=
soak: deps
	$(GO) run ./testenv/soak/cmd/lbsoak $(SOAKFLAGS)

clean:
	rm -rf bin var

# The release version: the last v* tag (v1.2.0 -> 1.2.0, three commits
# later 1.2.0+3.gabc1234), else 0.0.0~gitYYYYMMDD.abc1234 (no tag yet).
# It starts with a digit, as Debian versions do; the image tag replaces
# ~ and + (not allowed there) with -.
VERSION ?= $(shell v=$$(git describe --tags --match 'v[0-9]*' 2>/dev/null) && echo "$${v\#v}" | sed 's/-\([0-9]*\)-g/+\1.g/' || \
	{ c=$$(git log -1 --format='%cd.%h' --date=format:%Y%m%d 2>/dev/null) && echo "0.0.0~git$$c" || echo 0.0.0~dev; })
IMAGE_TAG ?= $(subst +,-,$(subst ~,-,$(VERSION)))
DEB_ARCH ?= $(shell $(GO) env GOARCH)
DEBDIR  ?= bin
STATIC  ?= bin/static/loopbreaker

# The static binary the package and the image ship: no cgo, the version
# stamped in (loopbreaker version).
$(STATIC): FORCE
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=$(BUILDVCS) -ldflags "-s -w -X main.version=$(VERSION)" -o $(STATIC) ./cmd/loopbreaker
FORCE:

# The Debian package $(DEBDIR)/loopbreaker_VERSION_ARCH.deb (dpkg-deb):
# /usr/sbin/loopbreaker, the unit in /lib/systemd/system, the policy as a
# conffile, man pages, the loopbreaker user made by postinst.
# apt-get install ./bin/loopbreaker_*.deb; apt-get purge loopbreaker.
deb: $(STATIC)
	bash cmd/loopbreaker/dist/debian/build.sh $(STATIC) $(VERSION) $(DEB_ARCH) $(DEBDIR)

# The daemon's image loopbreaker:VERSION and loopbreaker:local: the static
# binary FROM scratch (cmd/loopbreaker/dist/Dockerfile, the one the compose
# environment of testenv/docker builds too). docker run -p 7357:7357 loopbreaker:local
image: $(STATIC)
	rm -rf bin/image
	bash cmd/loopbreaker/dist/image-context.sh bin/image $(STATIC)
	DOCKER_BUILDKIT=0 docker build -q -t loopbreaker:$(IMAGE_TAG) -t loopbreaker:local bin/image

# One incident with real Postfix instances (as root), first without and then
# with loopbreaker: a timeline per second, the block, every message's fate,
# what was held and how to release it.
# make demo SCENARIO=forward-storm|list-loop|ping-pong|redirect-storm|fleet [DEMOFLAGS=-bounce-milter]
demo: deps
	$(GO) run ./testenv/demo -scenario $(or $(SCENARIO),forward-storm) $(DEMOFLAGS)
