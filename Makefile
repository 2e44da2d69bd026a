# socialgate: `make` builds, `make run` starts it on 127.0.0.1:3128 with
# proxy.ini.example, `make test` runs every test, `make fuzz` fuzzes every
# parser of outside input. `run`, `test` and `fuzz` first install what is
# missing from Debian.

PREFIX ?= /usr/local
DESTDIR ?=
SBINDIR = $(PREFIX)/sbin
SYSCONFDIR ?= $(PREFIX)/etc

CC ?= cc
PKGS = libevent_core libevent_pthreads libevent_openssl libevent_extra openssl libpcre2-8 inih libidn2 hiredis
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN = -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wmissing-prototypes -Wvla
CFLAGS ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(WARN) \
	-D_FORTIFY_SOURCE=2 -fno-strict-aliasing -pthread -Iproxy $(PKG_CFLAGS) \
	-DSYSCONFDIR='"$(SYSCONFDIR)"' $(CFLAGS) $(EXTRA_CFLAGS)
LDLIBS = $(PKG_LIBS) -lcrypt -pthread

BUILD ?= build
# Pure modules: no libevent; unit tests and fuzz targets link them alone.
PURE_SRC = proxy/logfmt.c proxy/errpage.c proxy/http1.c proxy/config.c proxy/inifile.c proxy/diag.c proxy/catalog.c proxy/rules.c proxy/sni.c proxy/timewin.c proxy/htpasswd.c proxy/policy.c proxy/usage.c proxy/decision.c proxy/local.c proxy/pages.c proxy/request.c proxy/report.c proxy/tlsmint.c proxy/proxyproto.c proxy/clusterkey.c proxy/helperproto.c proxy/negotiate.c \
	proxy/util/num.c proxy/util/addr.c proxy/util/escape.c
DAEMON_SRC = proxy/helper.c proxy/main.c proxy/explain.c proxy/log.c proxy/snapshot.c proxy/accesslog.c \
	proxy/worker.c proxy/conn.c proxy/txn.c proxy/upstream.c proxy/forward.c proxy/tunnel.c proxy/tlspage.c proxy/inspect.c proxy/gate.c proxy/dns.c proxy/authpool.c proxy/admin.c proxy/stats.c proxy/splice.c proxy/balancer.c proxy/cluster.c
SRC = $(PURE_SRC) $(DAEMON_SRC)
OBJ = $(SRC:%.c=$(BUILD)/%.o)
PURE_OBJ = $(PURE_SRC:%.c=$(BUILD)/%.o)
# The daemon without its main(): what the connection-core harness links.
CORE_OBJ = $(filter-out $(BUILD)/proxy/main.o,$(OBJ))

BIN ?= socialgate

all: $(BIN)

$(BIN): $(OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $(OBJ) $(LDLIBS) $(EXTRA_LDFLAGS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

-include $(OBJ:.o=.d)

# --- dependencies from Debian ------------------------------------------
BUILD_DEPS = gcc make pkg-config libevent-dev libssl-dev libpcre2-dev libinih-dev libcrypt-dev libidn2-dev libhiredis-dev
TEST_DEPS = libcmocka-dev python3-pytest curl wget nginx-light openssl apache2-utils tzdata groff-base man-db systemd nftables logrotate calamaris sarg prometheus util-linux nodejs faketime valgrind chromium libnss3-tools haproxy redis-server slapd ldap-utils squid krb5-kdc krb5-admin-server krb5-user
# clang and its sanitizer/libFuzzer runtimes: make fuzz, make tsan.
FUZZ_DEPS = clang libclang-rt-14-dev
define apt_need
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' \
	    || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "socialgate: installing from Debian:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends $$missing >/dev/null || exit 1; \
	fi
endef

deps:
	$(call apt_need,$(BUILD_DEPS))

test-deps: deps
	$(call apt_need,$(TEST_DEPS))

fuzz-deps: deps
	$(call apt_need,$(FUZZ_DEPS))

run: deps
	$(MAKE) $(BIN)
	./$(BIN) -c proxy.ini.example

# --- tests ----------------------------------------------------------------
UNIT_TESTS = $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))
CMOCKA_LIBS = $(shell pkg-config --libs cmocka 2>/dev/null || echo -lcmocka)

$(BUILD)/tests/%: tests/unit/%.c $(PURE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -o $@ $< $(PURE_OBJ) $(LDLIBS) $(CMOCKA_LIBS) $(EXTRA_LDFLAGS)

# The connection core's harness (socketpairs, no network) links the daemon
# objects, not only the pure ones; this rule wins over the pattern above.
$(BUILD)/tests/test_conn: tests/unit/test_conn.c $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -o $@ $< $(CORE_OBJ) $(LDLIBS) $(CMOCKA_LIBS) $(EXTRA_LDFLAGS)

# The helper pool's harness (real child processes from sh scripts) too.
$(BUILD)/tests/test_helper: tests/unit/test_helper.c $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -o $@ $< $(CORE_OBJ) $(LDLIBS) $(CMOCKA_LIBS) $(EXTRA_LDFLAGS)

# Every test runs, even after one fails; the target fails if any did.
unit: $(UNIT_TESTS)
	@rc=0; for t in $(UNIT_TESTS); do echo "== $$t"; ./$$t || rc=1; done; exit $$rc

# Catalog load time and lookups per second on one thread (not part of test).
$(BUILD)/bench/bench_classify: tests/bench/bench_classify.c $(PURE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -O2 -o $@ $< $(PURE_OBJ) $(LDLIBS) $(EXTRA_LDFLAGS)

bench-classify: $(BUILD)/bench/bench_classify
	./$(BUILD)/bench/bench_classify

# `socialgate report` on a ~1 GB generated usage log, next to `cat` as the
# disk-speed reference (not part of test). The log is made once.
REPORT_LOG = $(BUILD)/bench/report-1g.log
$(BUILD)/bench/gen_report_log: tests/bench/gen_report_log.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -O2 -o $@ $<

$(REPORT_LOG): | $(BUILD)/bench/gen_report_log
	./$(BUILD)/bench/gen_report_log 1024 >$@.tmp && mv $@.tmp $@

bench-report: $(BIN) $(REPORT_LOG)
	sh tests/bench/bench_report.sh ./$(BIN) $(REPORT_LOG)

# HTTPS deny pages per second, a new connection and TLS session each, beside
# nginx serving a page of the same size over TLS (ECDSA P-256 both), with
# one worker and with two; and the cost of minting a certificate for a new
# name (not part of test). TLS_PAGES_SECONDS per run.
TLS_PAGES_SECONDS ?= 8
$(BUILD)/bench/tls_pages: tests/bench/tls_pages.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -O2 -o $@ $< $(LDLIBS) $(EXTRA_LDFLAGS)

bench-tls-pages: $(BIN) $(BUILD)/bench/tls_pages
	sh tests/bench/bench_tls_pages.sh ./$(BIN) ./$(BUILD)/bench/tls_pages $(TLS_PAGES_SECONDS)

# No call cycle among the connection core and its phases and stages, and the
# core calls no phase by name (tests/layers.py prints the call graph).
check-layers:
	/usr/bin/python3 tests/layers.py

PYTEST = /usr/bin/python3 -m pytest
integration: $(BIN)
	$(PYTEST) -q tests/integration tests/catalog

test: test-deps
	$(MAKE) $(BIN) $(UNIT_TESTS)
	$(MAKE) unit
	$(MAKE) check-layers
	$(MAKE) integration
	$(MAKE) fuzz-replay

# --- fuzzing --------------------------------------------------------------
# One libFuzzer target per parser of outside input, tests/fuzz/fuzz_*.c,
# each with a seed corpus in tests/fuzz/corpus/<target>/ (see
# tests/fuzz/README.md).
#   make fuzz-replay   every corpus input once through each target, built
#                      with the normal compiler and flags (part of `test`)
#   make fuzz          clang -fsanitize=fuzzer,address,undefined builds in
#                      $(FUZZ_BUILD)/, each run FUZZ_SECONDS (default 60);
#                      fails on a crash, leak, hang or broken check
#   make fuzz-smoke    make fuzz FUZZ_SECONDS=10 (CI)
# New corpus entries, logs and crashing inputs go to $(FUZZ_WORK), never
# into the repository.
FUZZ_TARGETS = $(sort $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_HDRS = $(wildcard tests/fuzz/*.h)
FUZZ_REPLAY = $(FUZZ_TARGETS:%=$(BUILD)/fuzz-replay/%)
FUZZERS = $(FUZZ_TARGETS:%=$(BUILD)/fuzz/%)
CLANG ?= clang
FUZZ_BUILD ?= build-fuzz
FUZZ_WORK ?= $(FUZZ_BUILD)/work
FUZZ_SECONDS ?= 60
FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer

$(BUILD)/fuzz-replay/%: tests/fuzz/%.c tests/fuzz/replay.c $(FUZZ_HDRS) $(PURE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/fuzz -o $@ $< tests/fuzz/replay.c $(PURE_OBJ) $(LDLIBS) $(EXTRA_LDFLAGS)

fuzz-replay: $(FUZZ_REPLAY)
	@sh tests/fuzz/run.sh replay $(BUILD)/fuzz-replay $(FUZZ_TARGETS)

# Built by fuzz-build in $(FUZZ_BUILD) with CC=$(CLANG): the pure objects
# with -fsanitize=fuzzer-no-link, the targets linked with libFuzzer.
$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_HDRS) $(PURE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/fuzz -fsanitize=fuzzer -o $@ $< $(PURE_OBJ) $(LDLIBS) $(EXTRA_LDFLAGS)

fuzzers: $(FUZZERS)

# clang's -Wformat=2 also flags the vsnprintf of printf-like helpers.
fuzz-build: fuzz-deps
	$(MAKE) BUILD=$(FUZZ_BUILD) CC=$(CLANG) CFLAGS="-O1 -g -Wno-format-nonliteral" \
	  EXTRA_CFLAGS="-fsanitize=fuzzer-no-link $(FUZZ_SAN)" EXTRA_LDFLAGS="$(FUZZ_SAN)" fuzzers

fuzz: fuzz-build
	@sh tests/fuzz/run.sh fuzz $(FUZZ_BUILD)/fuzz $(FUZZ_SECONDS) $(FUZZ_WORK) $(FUZZ_TARGETS)

fuzz-smoke:
	$(MAKE) fuzz FUZZ_SECONDS=10

# Sanitizer build in its own tree; runs the same suites against it.
asan:
	$(MAKE) BUILD=build-asan BIN=build-asan/socialgate \
	  EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -O1" \
	  EXTRA_LDFLAGS="-fsanitize=address,undefined" CFLAGS=-g build-asan/socialgate

test-asan: test-deps asan
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 $(MAKE) BUILD=build-asan BIN=build-asan/socialgate \
	  EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -O1" \
	  EXTRA_LDFLAGS="-fsanitize=address,undefined" CFLAGS=-g unit fuzz-replay
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
	  SOCIALGATE_BIN=build-asan/socialgate $(PYTEST) -q tests/integration

# Memcheck: the integration suite once with every socialgate process under
# valgrind (tests/integration/valgrind-wrap.sh, one log per process in
# $(VALGRIND_LOGS)); fails on any memcheck error or definite leak, checked
# per daemon by the fixtures and over all logs by valgrind-check.sh. Tests
# that measure speed, time bounds or memory are deselected.
VALGRIND_LOGS = build-valgrind/logs
test-valgrind: test-deps
	$(MAKE) $(BIN)
	rm -rf $(VALGRIND_LOGS) && mkdir -p $(VALGRIND_LOGS)
	SG_VALGRIND_LOGS=$(CURDIR)/$(VALGRIND_LOGS) SG_VALGRIND_TARGET=$(CURDIR)/$(BIN) SG_KILL_GRACE=30 \
	  SOCIALGATE_BIN=tests/integration/valgrind-wrap.sh \
	  $(PYTEST) -q -m "not slow_under_valgrind" tests/integration; rc=$$?; \
	  sh tests/integration/valgrind-check.sh $(VALGRIND_LOGS) || rc=1; exit $$rc

# ThreadSanitizer: a clang build in build-tsan/ and the whole integration
# suite against it (two workers, the tests' default); a race stops the daemon
# (halt_on_error), which fails the test. tests/tsan.supp explains each
# suppression.
TSAN_FLAGS = -fsanitize=thread -fno-omit-frame-pointer
tsan:
	$(MAKE) BUILD=build-tsan BIN=build-tsan/socialgate CC=$(CLANG) \
	  CFLAGS="-O1 -g -Wno-format-nonliteral" EXTRA_CFLAGS="$(TSAN_FLAGS)" \
	  EXTRA_LDFLAGS="$(TSAN_FLAGS)" build-tsan/socialgate

test-tsan: test-deps
	$(call apt_need,clang)
	$(MAKE) tsan
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp" \
	  SOCIALGATE_BIN=build-tsan/socialgate $(PYTEST) -q tests/integration

# --- install ----------------------------------------------------------------
# make install [PREFIX=/usr/local] [DESTDIR=...], as root for a real install:
#   $(SBINDIR)/socialgate
#   $(CONFDIR)/proxy.ini, rules/*.ini   the example configuration, with the
#       production paths of its comments (state_dir /var/lib/socialgate, the
#       usage log in /var/log/socialgate); a file the administrator edited is
#       kept and the new version is installed beside it as FILE.dist
#   $(MANDIR)/man8/socialgate.8, man5/socialgate.ini.5
#   $(DATADIR)/...                      contrib/ (unit, logrotate, PAC, nftables,
#       ...) and defaults/, the configuration as shipped, to tell edits apart
#   $(UNITDIR)/socialgate.service       with the paths of this PREFIX; systemd
#       reads units from /usr/local/lib/systemd/system and /usr/lib/systemd/system,
#       for other prefixes pass UNITDIR=/etc/systemd/system (or systemctl link)
#   $(LOGDIR), $(STATEDIR)              the usage log's folder and state_dir of
#       the installed proxy.ini, mode 0750, made when missing and then given to
#       RUN_USER (the unit's User=) when that user exists and make runs as
#       root, so that `socialgate -t` passes on the installed configuration at
#       once. The unit names them StateDirectory/LogsDirectory: keep the
#       defaults with it (other values are for trying an installation out).
# make uninstall removes all of it except configuration files the
# administrator edited (an unedited one, equal to its defaults/ copy, goes),
# and $(LOGDIR) and $(STATEDIR) unless they are empty.
# Use the same PREFIX (and SYSCONFDIR) for make, make install and make
# uninstall: the default configuration path is compiled in.
CONFDIR = $(SYSCONFDIR)/socialgate
MANDIR ?= $(PREFIX)/share/man
DATADIR ?= $(PREFIX)/share/socialgate
UNITDIR ?= $(PREFIX)/lib/systemd/system
LOGDIR ?= /var/log/socialgate
STATEDIR ?= /var/lib/socialgate
RUN_USER ?= socialgate
DIST = $(BUILD)/dist
DIST_SED = -e 's|/usr/local/sbin/|$(SBINDIR)/|g' -e 's|/usr/local/etc/socialgate|$(CONFDIR)|g'
CONTRIB_FILES = $(shell find contrib -type f ! -path 'contrib/man/*' ! -name '*.pyc' \
	! -path '*/__pycache__/*' ! -name '*~' 2>/dev/null | LC_ALL=C sort)

# Every performance goal from one command (tests/bench/bench_all.py): the
# forward-proxy harness (../shared/bench) with socialgate, socialgate with
# [cluster], squid and direct; HTTPS deny pages against nginx; [cluster] on a
# classified host with a quota; cached Basic through basic_ldap_auth and
# Negotiate through negotiate_kerberos_auth against squid with the same
# helpers; workers = 2 over workers = 1 unpinned. It ends
# with one table of ratios and goals. BENCH_ARGS=--quick: a shorter run;
# other BENCH_ARGS go to the harness.
BENCH_HARNESS ?= ../shared/bench/run.sh
BENCH_ARGS ?=
BENCH_DEPS = wrk curl openssl nginx-light squid redis-server slapd ldap-utils python3-pytest \
	krb5-kdc krb5-admin-server krb5-user
bench: deps $(BIN) $(BUILD)/bench/tls_pages
	$(call apt_need,$(BENCH_DEPS))
	/usr/bin/python3 tests/bench/bench_all.py --bin ./$(BIN) --tls-pages ./$(BUILD)/bench/tls_pages \
	  --harness $(BENCH_HARNESS) $(BENCH_ARGS)

# Many idle tunnels through one worker: RSS per tunnel, every tunnel still
# passes data. Needs 4 descriptors per tunnel on this machine (client, echo
# server and the proxy's two); TUNNELS=20000 needs a hard limit above 80000.
TUNNELS ?= 9000
TUNNELS_PORT ?= 18040
bench-tunnels: $(BIN)
	rm -rf $(BUILD)/bench-run && tests/bench/make-bench-config.sh $(BUILD)/bench-run >/dev/null
	sed -i 's/^connect_ports = .*/connect_ports = 1024-65535/; s/^listen = .*/listen = 127.0.0.1:$(TUNNELS_PORT)/' $(BUILD)/bench-run/bench.ini
	./$(BIN) -c $(BUILD)/bench-run/bench.ini 2>$(BUILD)/bench-run/stderr & pid=$$!; sleep 1; \
	  /usr/bin/python3 tests/bench/tunnels.py --proxy-pid $$pid --proxy-port $(TUNNELS_PORT) --tunnels $(TUNNELS); \
	  rc=$$?; kill $$pid; wait $$pid; exit $$rc

install: $(BIN)
	@set -e; rm -rf $(DIST); mkdir -p $(DIST)/etc/rules; \
	sed -e 's|^state_dir = state$$|state_dir = $(STATEDIR)|' \
	    -e 's|^access = -$$|access = $(LOGDIR)/access.log|' \
	    proxy.ini.example >$(DIST)/etc/proxy.ini; \
	for f in rules/*.ini; do cp $$f $(DIST)/etc/rules/; done; \
	sed $(DIST_SED) contrib/systemd/socialgate.service >$(DIST)/socialgate.service
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(CONFDIR)/rules $(DESTDIR)$(MANDIR)/man8 \
	  $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(DATADIR)/defaults/rules $(DESTDIR)$(UNITDIR)
	install -m 0755 $(BIN) $(DESTDIR)$(SBINDIR)/socialgate
	install -m 0644 contrib/man/socialgate.8 $(DESTDIR)$(MANDIR)/man8/socialgate.8
	install -m 0644 contrib/man/socialgate.ini.5 $(DESTDIR)$(MANDIR)/man5/socialgate.ini.5
	install -m 0644 $(DIST)/socialgate.service $(DESTDIR)$(UNITDIR)/socialgate.service
	@set -e; cd $(DIST)/etc; for f in proxy.ini rules/*.ini; do \
	  dst="$(DESTDIR)$(CONFDIR)/$$f"; ref="$(DESTDIR)$(DATADIR)/defaults/$$f"; \
	  if [ ! -e "$$dst" ] || cmp -s "$$f" "$$dst" || { [ -e "$$ref" ] && cmp -s "$$ref" "$$dst"; }; then \
	    echo "install $$dst"; install -m 0644 "$$f" "$$dst"; rm -f "$$dst.dist"; \
	  else \
	    echo "keep $$dst (edited): the new version is $$dst.dist"; \
	    install -m 0644 "$$f" "$$dst.dist"; \
	  fi; \
	  install -m 0644 "$$f" "$$ref"; \
	done
	@set -e; for f in $(CONTRIB_FILES); do \
	  rel=$${f#contrib/}; dst="$(DESTDIR)$(DATADIR)/$$rel"; \
	  mode=0644; [ -x "$$f" ] && mode=0755; \
	  install -d "$${dst%/*}"; \
	  if [ "$$f" = contrib/systemd/socialgate.service ]; then f=$(DIST)/socialgate.service; fi; \
	  install -m $$mode "$$f" "$$dst"; \
	done; echo "install $(DESTDIR)$(DATADIR)/ (contrib files)"
	@set -e; for d in "$(DESTDIR)$(LOGDIR)" "$(DESTDIR)$(STATEDIR)"; do \
	  [ -d "$$d" ] && continue; \
	  install -d -m 0750 "$$d"; echo "install $$d/"; \
	  if [ "$$(id -u)" -eq 0 ] && id -u "$(RUN_USER)" >/dev/null 2>&1; then \
	    chown "$(RUN_USER):$$(id -gn "$(RUN_USER)")" "$$d"; echo "  owned by $(RUN_USER)"; \
	  fi; \
	done

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/socialgate $(DESTDIR)$(MANDIR)/man8/socialgate.8 \
	  $(DESTDIR)$(MANDIR)/man5/socialgate.ini.5 $(DESTDIR)$(UNITDIR)/socialgate.service
	@set -e; conf="$(DESTDIR)$(CONFDIR)"; ref="$(DESTDIR)$(DATADIR)/defaults"; \
	if [ -d "$$ref" ]; then list=$$(cd "$$ref" && find . -type f | sed 's|^\./||'); \
	else list="proxy.ini $$(ls rules/*.ini)"; fi; \
	for f in $$list; do \
	  rm -f "$$conf/$$f.dist"; \
	  [ -e "$$conf/$$f" ] || continue; \
	  if [ -e "$$ref/$$f" ] && cmp -s "$$ref/$$f" "$$conf/$$f"; then rm -f "$$conf/$$f"; \
	  else echo "keep $$conf/$$f (edited)"; fi; \
	done; \
	rmdir "$$conf/rules" 2>/dev/null || true; rmdir "$$conf" 2>/dev/null || true
	rm -rf $(DESTDIR)$(DATADIR)
	@rmdir "$(DESTDIR)$(LOGDIR)" "$(DESTDIR)$(STATEDIR)" 2>/dev/null || true

clean:
	rm -rf $(BUILD) build-asan build-tsan build-valgrind $(FUZZ_BUILD) $(BIN)

.PHONY: bench bench-tunnels all deps test-deps fuzz-deps run unit integration test asan test-asan \
	test-valgrind tsan test-tsan install uninstall check-layers \
	clean bench-classify fuzz-replay fuzzers fuzz-build fuzz fuzz-smoke bench-report bench-tls-pages
