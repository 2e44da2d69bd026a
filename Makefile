# socialgate: `make` builds, `make run` starts it on 127.0.0.1:3128 with
# proxy.ini.example, `make test` runs every test. `run` and `test` first
# install what is missing from Debian.

PREFIX ?= /usr/local
DESTDIR ?=
SBINDIR = $(PREFIX)/sbin
SYSCONFDIR ?= $(PREFIX)/etc

CC ?= cc
PKGS = libevent_core libevent_pthreads libevent_openssl libevent_extra openssl libpcre2-8 inih libidn2
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
PURE_SRC = proxy/logfmt.c proxy/errpage.c proxy/http1.c proxy/config.c proxy/inifile.c proxy/diag.c proxy/catalog.c proxy/rules.c proxy/sni.c proxy/timewin.c proxy/htpasswd.c proxy/policy.c proxy/usage.c proxy/decision.c proxy/local.c proxy/report.c \
	proxy/util/num.c proxy/util/addr.c proxy/util/escape.c
DAEMON_SRC = proxy/main.c proxy/explain.c proxy/log.c proxy/snapshot.c proxy/accesslog.c \
	proxy/worker.c proxy/conn.c proxy/dns.c proxy/authpool.c proxy/admin.c proxy/stats.c
SRC = $(PURE_SRC) $(DAEMON_SRC)
OBJ = $(SRC:%.c=$(BUILD)/%.o)
PURE_OBJ = $(PURE_SRC:%.c=$(BUILD)/%.o)

BIN ?= socialgate

all: $(BIN)

$(BIN): $(OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $(OBJ) $(LDLIBS) $(EXTRA_LDFLAGS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

-include $(OBJ:.o=.d)

# --- dependencies from Debian ------------------------------------------
BUILD_DEPS = gcc make pkg-config libevent-dev libssl-dev libpcre2-dev libinih-dev libcrypt-dev libidn2-dev
TEST_DEPS = libcmocka-dev python3-pytest curl wget nginx-light openssl apache2-utils tzdata
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

run: deps
	$(MAKE) $(BIN)
	./$(BIN) -c proxy.ini.example

# --- tests ----------------------------------------------------------------
UNIT_TESTS = $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))
CMOCKA_LIBS = $(shell pkg-config --libs cmocka 2>/dev/null || echo -lcmocka)

$(BUILD)/tests/%: tests/unit/%.c $(PURE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -o $@ $< $(PURE_OBJ) $(LDLIBS) $(CMOCKA_LIBS) $(EXTRA_LDFLAGS)

unit: $(UNIT_TESTS)
	@set -e; for t in $(UNIT_TESTS); do echo "== $$t"; ./$$t; done

# Catalog load time and lookups per second on one thread (not part of test).
$(BUILD)/bench/bench_classify: tests/bench/bench_classify.c $(PURE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -O2 -o $@ $< $(PURE_OBJ) $(LDLIBS) $(EXTRA_LDFLAGS)

bench-classify: $(BUILD)/bench/bench_classify
	./$(BUILD)/bench/bench_classify

PYTEST = /usr/bin/python3 -m pytest
integration: $(BIN)
	$(PYTEST) -q tests/integration tests/catalog

test: test-deps
	$(MAKE) $(BIN) $(UNIT_TESTS)
	$(MAKE) unit
	$(MAKE) integration

# Sanitizer build in its own tree; runs the same suites against it.
asan:
	$(MAKE) BUILD=build-asan BIN=build-asan/socialgate \
	  EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -O1" \
	  EXTRA_LDFLAGS="-fsanitize=address,undefined" CFLAGS=-g build-asan/socialgate

test-asan: test-deps asan
	$(MAKE) BUILD=build-asan BIN=build-asan/socialgate \
	  EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -O1" \
	  EXTRA_LDFLAGS="-fsanitize=address,undefined" CFLAGS=-g unit
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
	  SOCIALGATE_BIN=build-asan/socialgate $(PYTEST) -q tests/integration

install: $(BIN)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(SYSCONFDIR)/socialgate/rules
	install -m 0755 $(BIN) $(DESTDIR)$(SBINDIR)/socialgate
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/socialgate/proxy.ini ]; then \
	  install -m 0644 proxy.ini.example $(DESTDIR)$(SYSCONFDIR)/socialgate/proxy.ini.dist; \
	else install -m 0644 proxy.ini.example $(DESTDIR)$(SYSCONFDIR)/socialgate/proxy.ini; fi
	@for f in rules/*.ini; do [ -e "$$f" ] || continue; \
	  d=$(DESTDIR)$(SYSCONFDIR)/socialgate/$$f; \
	  if [ -e "$$d" ]; then install -m 0644 $$f $$d.dist; else install -m 0644 $$f $$d; fi; done

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/socialgate

clean:
	rm -rf $(BUILD) build-asan $(BIN)

.PHONY: all deps test-deps run unit integration test asan test-asan install uninstall clean \
	bench-classify
