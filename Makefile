# Hostmesh: two commands on a fresh Debian 12 machine (as root): `make demo` and `make test`.
# Each first installs what is missing (Debian packages only), then builds and runs.

APT_PACKAGES := pkg-config libsodium-dev libssl-dev libsqlite3-dev qemu-system-x86 qemu-utils busybox-static cpio gzip xz-utils \
                gcc libc6-dev binutils iproute2 prometheus chromium chromium-driver
SWIFT ?= swift

.PHONY: all deps build release test demo guest bench lab lab-down clean fuzz install install-files

all: build

# Install missing Debian packages; refresh the package lists only if an install needs it.
deps:
	@command -v $(SWIFT) >/dev/null || { echo "error: swift not found in PATH (expected the Swift 6 toolchain, e.g. /opt/swift/usr/bin)"; exit 1; }
	@Scripts/install-qemu.sh
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y --no-install-recommends $$missing || { apt-get update && apt-get install -y --no-install-recommends $$missing; }; \
	fi

guest: deps
	@Deploy/guest/build-guest.sh >/dev/null

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release --product hostmesh

test: deps guest
	$(SWIFT) build --build-tests
	@# Three serial streams side by side: the suites that mostly wait on timers, the largest
	@# migration suites, and the rest (one test at a time in each, see the script for why).
	Scripts/run-tests.sh $(SWIFT)

# The decoder fuzz tests for longer than `make test` runs them (HOSTMESH_FUZZ_ITERATIONS per
# decoder; HOSTMESH_FUZZ_SEED replays a failure's seed).
fuzz: deps
	$(SWIFT) build --build-tests
	HOSTMESH_FUZZ_ITERATIONS=$${HOSTMESH_FUZZ_ITERATIONS:-200000} $(SWIFT) test --skip-build --filter 'DecoderFuzzTests'

# Installs the release binary, the systemd unit, a commented /etc/hostmesh/hostmesh.toml (an
# existing one is kept) and /var/lib/hostmesh. DESTDIR stages into another root; PREFIX moves
# the binary (the unit's ExecStart follows it). Then: systemctl enable --now hostmesh.
PREFIX ?= /usr/local
install: release
	@$(MAKE) --no-print-directory install-files BIN=.build/release/hostmesh

# The files only, from BIN (a test installs a debug build into a DESTDIR this way).
install-files:
	@test -x "$(BIN)" || { echo "error: BIN=$(BIN) is not an executable (make install builds it)"; exit 1; }
	install -D -m 0755 "$(BIN)" "$(DESTDIR)$(PREFIX)/bin/hostmesh"
	install -d -m 0755 "$(DESTDIR)/etc/systemd/system"
	sed 's|/usr/local/bin/hostmesh|$(PREFIX)/bin/hostmesh|; s|/usr/local/share/doc/hostmesh|$(PREFIX)/share/doc/hostmesh|' \
		Deploy/systemd/hostmesh.service > "$(DESTDIR)/etc/systemd/system/hostmesh.service"
	chmod 0644 "$(DESTDIR)/etc/systemd/system/hostmesh.service"
	install -D -m 0644 README.md "$(DESTDIR)$(PREFIX)/share/doc/hostmesh/README.md"
	install -d -m 0755 "$(DESTDIR)$(PREFIX)/share/bash-completion/completions" "$(DESTDIR)$(PREFIX)/share/zsh/site-functions" \
		"$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d"
	"$(BIN)" --generate-completion-script bash > "$(DESTDIR)$(PREFIX)/share/bash-completion/completions/hostmesh"
	"$(BIN)" --generate-completion-script zsh > "$(DESTDIR)$(PREFIX)/share/zsh/site-functions/_hostmesh"
	"$(BIN)" --generate-completion-script fish > "$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/hostmesh.fish"
	install -d -m 0750 "$(DESTDIR)/etc/hostmesh"
	@if [ -e "$(DESTDIR)/etc/hostmesh/hostmesh.toml" ]; then echo "kept the existing $(DESTDIR)/etc/hostmesh/hostmesh.toml"; \
	else install -m 0640 Deploy/etc/hostmesh.toml "$(DESTDIR)/etc/hostmesh/hostmesh.toml"; fi
	install -d -m 0700 "$(DESTDIR)/var/lib/hostmesh"
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
	@echo "installed; next: hostmesh keys init, certify the host (README), then systemctl enable --now hostmesh"

demo: release guest
	@Deploy/demo.sh .build/release/hostmesh Deploy/out/guest

# A lab of LAB_HOSTS hosts (network namespaces hm-lab-<i> on bridge hm-lab-br, 10.77.100.<i>/24,
# MTU 1500, shared storage /tmp/hm-lab/shared): see Scripts/lab.sh. Needs root.
LAB_HOSTS ?= 3
lab: deps
	@Scripts/lab.sh up $(LAB_HOSTS)

lab-down:
	@Scripts/lab.sh down

bench: release guest
	.build/release/hostmesh bench channel
	.build/release/hostmesh bench migrate

clean:
	rm -rf .build Deploy/out
