# lookout: one plain Makefile, pkg-config for every dependency.
#   make            build build/lookout
#   make run        start the agent on config/lookout.yaml
#   make test       unit tests, the same under ASan+UBSan, proto check, integration
#                   (the reload tests also on an ASan+UBSan agent), interop
#   make bench      benchmarks (see test/bench/)
#   make fuzz       run each libFuzzer target for FUZZ_SECONDS (clang)
#   make reliability  hostile clients, overload, failing backends (test_hostile,
#                   test_overload, test_backends); make valgrind-smoke; make fuzz-smoke
#   make deps       install what the build and the tests lack (apt-get or brew, npm)
#   make fresh-check  make run, make install and make test on a brand-new Debian 12
#                   (chroot, root)
#   make install    PREFIX/bin/lookout, PREFIX/etc/lookout/lookout.yaml (kept if
#                   there), PREFIX/share/man/man8/lookout.8; DESTDIR for staging;
#                   make uninstall. make install-launchd (macOS) / install-systemd
#                   (Linux) also install and start the service; uninstall-* undo it.
# Knobs: CC=gcc|clang, SANITIZE=address,undefined (builds into build-san/), V=1

PKG_CONFIG ?= pkg-config
# V=1 shows compiler and linker command lines (and all of `make test`'s output).
V ?= 0
ifeq ($(V),1)
Q :=
say = @true
else
Q := @
say = @printf '  %-7s %s\n' $(1) $(2)
endif
CC ?= cc
SANITIZE ?=
FUZZ_SECONDS ?= 20
# Seconds per fuzz target in `make test` (the fuzz stage, make fuzz-smoke).
FUZZ_SMOKE_SECONDS ?= 10
VERSION := 0.1.0

ifeq ($(FUZZ),1)
B := build-fuzz
override CC := clang
override SANITIZE := fuzzer-no-link,address,undefined
else ifeq ($(SANITIZE),)
B := build
else
B := build-san
endif

# sqlite3, libcurl and zlib are keg-only Homebrew formulas (not linked into its
# prefix): on macOS pkg-config resolves them to the libraries macOS ships.
PKGS := libuv libprotobuf-c grpc libnghttp2 jansson yaml-0.1 libcurl zlib libzstd sqlite3
TEST_PKGS := check openssl

UNAME_S := $(shell uname -s)
# http-parser ships no .pc file; llhttp (Homebrew) is preferred where present.
HTTP_PARSER_CFLAGS :=
HTTP_PARSER_LIBS := -lhttp_parser
ifneq ($(shell $(PKG_CONFIG) --exists libllhttp 2>/dev/null && echo y),)
HTTP_PARSER_CFLAGS := -DLK_HAVE_LLHTTP $(shell $(PKG_CONFIG) --cflags libllhttp)
HTTP_PARSER_LIBS := $(shell $(PKG_CONFIG) --libs libllhttp)
endif
# gzip compression goes through libdeflate where the build finds it (about
# twice zlib's speed at the same ratio, docs/bench.md), zlib otherwise;
# inflating stays zlib's (streaming, with an output cap). LIBDEFLATE=0 forces zlib.
LIBDEFLATE ?= $(if $(shell $(PKG_CONFIG) --exists libdeflate 2>/dev/null && echo y),1,0)
ifeq ($(LIBDEFLATE),1)
PKGS += libdeflate
CODEC_CFLAGS := -DLK_HAVE_LIBDEFLATE
endif
ifeq ($(UNAME_S),Darwin)
BREW_PREFIX := $(shell brew --prefix 2>/dev/null)
EXTRA_CFLAGS := -I$(BREW_PREFIX)/include
EXTRA_LIBS := -L$(BREW_PREFIX)/lib
endif

DEP_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
DEP_LIBS = $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
TEST_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(TEST_PKGS) 2>/dev/null)
TEST_LIBS = $(shell $(PKG_CONFIG) --libs $(TEST_PKGS) 2>/dev/null)

WARN := -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow -Wpointer-arith \
        -Wstrict-prototypes -Wmissing-prototypes
OPT ?= -O2 -g
CFLAGS_ALL := -std=c11 -D_DEFAULT_SOURCE -D_GNU_SOURCE $(OPT) $(WARN) -MMD -MP \
        -Iagent -I$(B)/gen $(EXTRA_CFLAGS) $(HTTP_PARSER_CFLAGS) $(CODEC_CFLAGS) \
        -DLK_VERSION='"$(VERSION)"'
ifneq ($(SANITIZE),)
CFLAGS_ALL += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS_ALL += -fsanitize=$(SANITIZE)
endif
LIBS_ALL = $(DEP_LIBS) $(HTTP_PARSER_LIBS) -lsnappy $(EXTRA_LIBS) -lpthread -lm

# --- protobuf: proto/ -> $(B)/proto (optional rewritten as oneof) -> protoc-c
PROTOS := $(shell find proto -name '*.proto' | sort)
PROTO_REWRITTEN := $(PROTOS:proto/%=$(B)/proto/%)
PROTO_C := $(PROTOS:proto/%.proto=$(B)/gen/%.pb-c.c)
PROTO_H := $(PROTO_C:.c=.h)

# --- sources
AGENT_SRC := $(shell find agent -name '*.c' ! -name main.c | sort)
AGENT_OBJ := $(AGENT_SRC:%.c=$(B)/obj/%.o) $(PROTO_C:$(B)/gen/%.c=$(B)/obj/gen/%.o)
LIB := $(B)/liblookout.a

UNIT_SRC := $(shell find test/unit -name '*_test.c' 2>/dev/null | sort)
UNIT_BIN := $(UNIT_SRC:test/unit/%.c=$(B)/test/%)

FUZZ_SRC := $(shell find test/fuzz -maxdepth 1 -name '*_fuzz.c' 2>/dev/null | sort)

.PHONY: all run test unit unit-san proto-check service-check integration integration-san interop bench fuzz fuzz-bins deps deps-build \
        reliability durability valgrind-smoke fuzz-smoke \
        clean check-deps check-test-deps format-check fresh-check docs-check \
        install uninstall install-launchd uninstall-launchd install-systemd uninstall-systemd
.DEFAULT_GOAL := all

all: check-deps $(B)/lookout

# Flags file: changing compiler or flags forces a rebuild.
$(B)/.flags: FORCE
	@mkdir -p $(B)
	@echo '$(CC) $(CFLAGS_ALL) $(DEP_CFLAGS) $(LDFLAGS_ALL)' | cmp -s - $@ || \
	  echo '$(CC) $(CFLAGS_ALL) $(DEP_CFLAGS) $(LDFLAGS_ALL)' > $@
FORCE:

# Each line: what to test | Debian package | Homebrew formula.
# Tests: pc:NAME (pkg-config), h:HEADER (compiles), bin:TOOL, py:MODULE (test Python:
# /usr/bin/python3, where Debian's modules load, or python3), proto:FILE (protoc
# finds FILE as an import: the well-known types), san:LIST (the C compiler links
# and runs a program with -fsanitize=LIST). A "-" formula means "not on macOS":
# there the entry is not required (py: entries come from pip instead).
CC_DEB := $(if $(findstring clang,$(CC)),clang,gcc)
SAN_DEB := $(if $(findstring clang,$(CC)),libclang-rt-dev,gcc)
DEP_TABLE := \
  bin:$(firstword $(CC))|$(CC_DEB)|- bin:pkg-config|pkg-config|pkg-config \
  pc:libuv|libuv1-dev|libuv pc:libprotobuf-c|libprotobuf-c-dev|protobuf-c \
  bin:protoc-c|protobuf-c-compiler|protobuf-c pc:grpc|libgrpc-dev|grpc \
  pc:libnghttp2|libnghttp2-dev|nghttp2 pc:jansson|libjansson-dev|jansson \
  pc:yaml-0.1|libyaml-dev|libyaml pc:libcurl|libcurl4-openssl-dev|curl \
  pc:zlib|zlib1g-dev|zlib pc:libzstd|libzstd-dev|zstd h:snappy-c.h|libsnappy-dev|snappy \
  pc:sqlite3|libsqlite3-dev|sqlite \
  h:http_parser.h|libhttp-parser-dev|llhttp \
  bin:curl|curl|curl
# Installed by `make deps` too, but the build goes on without it: libdeflate
# (gzip then compresses with zlib).
OPT_DEP_TABLE := pc:libdeflate|libdeflate-dev|libdeflate
# What only `make test` uses: Check and OpenSSL (a TLS peer in the unit tests),
# the sanitizer runtime for unit-san, protoc for the Python modules and the
# proto check (with the well-known types the Loki schema imports), the Python
# tests and sinks, promtool, node and npm for the OpenTelemetry JavaScript SDK
# (installed into build/ by test/interop/install.sh), and the checkers of the
# service stage: shellcheck, xmllint (the plist), systemd-analyze (the unit;
# Linux only, as the brew "-" says), which wants the unit's ExecReload command,
# /bin/kill, to exist; the zstd CLI (the OTLP/HTTP sink decodes zstd bodies with it);
# valgrind (the valgrind stage) and clang with libFuzzer (fuzz:LIST: clang links
# and runs a fuzz target with -fsanitize=fuzzer,LIST; the fuzz stage), neither
# required on macOS, where those stages say "skipped"; tmux (`lookout top` is
# tested in a tmux pane) and groff (the man page's lint; skipped without it).
TEST_DEP_TABLE := pc:check|check|check pc:openssl|libssl-dev|openssl \
  san:address,undefined|$(SAN_DEB)|- bin:protoc|protobuf-compiler|protobuf \
  proto:google/protobuf/timestamp.proto|libprotobuf-dev|protobuf \
  py:grpc|python3-grpcio|- py:google.protobuf|python3-protobuf|- py:yaml|python3-yaml|- py:snappy|python3-snappy|- \
  bin:promtool|prometheus|prometheus bin:node|nodejs|node bin:npm|npm|- \
  bin:shellcheck|shellcheck|shellcheck bin:xmllint|libxml2-utils|- bin:systemd-analyze|systemd|- \
  bin:/bin/kill|procps|- bin:zstd|zstd|zstd \
  bin:valgrind|valgrind|- bin:clang|clang|- fuzz:address,undefined|libclang-rt-dev|- \
  bin:tmux|tmux|tmux bin:groff|groff-base|-

# Prints the missing entries of DEP_TABLE (and TEST_DEP_TABLE) as "deb|brew".
define missing_deps
for e in $(foreach d,$(1),'$(d)'); do \
  t=$${e%%|*}; rest=$${e#*|}; kind=$${t%%:*}; name=$${t#*:}; ok=; \
  case $$kind in \
    pc) $(PKG_CONFIG) --exists $$name 2>/dev/null && ok=1 ;; \
    bin) command -v $$name >/dev/null 2>&1 && ok=1 ;; \
    py) for p in /usr/bin/python3 python3; do \
          "$$p" -c "import $$name" >/dev/null 2>&1 && { ok=1; break; }; done ;; \
    proto) d=$$(mktemp -d) && printf 'syntax = "proto3";\nimport "%s";\n' $$name > $$d/t.proto && \
       protoc -I$$d --descriptor_set_out=$$d/t.pb $$d/t.proto >/dev/null 2>&1 && ok=1; rm -rf "$$d" ;; \
    san) d=build/.depcheck && mkdir -p $$d && echo 'int main(void) { return 0; }' > $$d/t.c && \
       $(CC) -fsanitize=$$name $$d/t.c -o $$d/t >/dev/null 2>&1 && $$d/t && ok=1; rm -rf "$$d" ;; \
    fuzz) d=build/.depcheck && mkdir -p $$d && \
       printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' > $$d/f.c && \
       clang -fsanitize=fuzzer,$$name $$d/f.c -o $$d/f >/dev/null 2>&1 && $$d/f -runs=1 >/dev/null 2>&1 && ok=1; rm -rf "$$d" ;; \
    h) if [ $$name = http_parser.h ] && $(PKG_CONFIG) --exists libllhttp 2>/dev/null; then ok=1; \
       elif printf '#include <%s>\n' $$name | $(CC) $(EXTRA_CFLAGS) -E -x c - >/dev/null 2>&1; then ok=1; fi ;; \
  esac; \
  [ "$(UNAME_S)" = Darwin ] && [ "$${rest#*|}" = - ] && [ $$kind != py ] && ok=1; \
  [ -n "$$ok" ] || echo "$$rest"; \
done
endef

define check_deps
@miss=$$($(call missing_deps,$(1))); \
if [ -n "$$miss" ]; then \
  echo "missing $(2) dependencies (run 'make deps'):"; \
  echo "$$miss" | sed 's/^/  apt: /; s/|/   brew: /'; exit 1; fi
endef

check-deps:
	$(call check_deps,$(DEP_TABLE),build)

check-test-deps:
	$(call check_deps,$(DEP_TABLE) $(TEST_DEP_TABLE),build or test)

# Installs the missing entries of a table (apt-get or brew), then checks again.
# Without pkg-config every pc: check fails, so pkg-config comes in the same
# install as the libraries; a bare Debian needs nothing but make beforehand.
define install_deps
miss=$$($(call missing_deps,$(1))); \
[ -z "$$miss" ] && exit 0; \
mkdir -p build; : > build/deps.log; \
if [ "$(V)" = 1 ]; then log=/dev/stdout; else log=build/deps.log; fi; \
if [ "$(UNAME_S)" = Darwin ]; then \
  pk=$$(echo "$$miss" | cut -d'|' -f2 | grep -v '^-$$' | sort -u); \
  [ -z "$$pk" ] || { echo "deps: brew install" $$pk; brew install $$pk >> $$log 2>&1 || \
    { [ "$(V)" = 1 ] || cat build/deps.log; echo "deps: brew install failed"; exit 1; }; }; \
  echo "$$miss" | grep -q '^python3-' && \
    echo "deps: the tests need Python modules: python3 -m pip install grpcio protobuf pyyaml python-snappy"; \
elif command -v apt-get >/dev/null 2>&1; then \
  pk=$$(echo "$$miss" | cut -d'|' -f1 | sort -u); \
  sudo=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
  echo "deps: apt-get install" $$pk; \
  { $$sudo apt-get update -q && \
    $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$pk; } \
    < /dev/null >> $$log 2>&1 || { [ "$(V)" = 1 ] || cat build/deps.log; echo "deps: apt-get failed"; exit 1; }; \
else echo "deps: install these yourself (Debian package | Homebrew formula):"; echo "$$miss"; exit 1; fi; \
miss=$$($(call missing_deps,$(1))); \
[ -z "$$miss" ] || { echo "deps: still missing (Debian package | Homebrew formula):"; echo "$$miss"; exit 1; }
endef

# Everything: the build and the tests, and the npm packages of the interop
# test (locked versions, into build/interop-node).
deps:
	@$(call install_deps,$(DEP_TABLE) $(OPT_DEP_TABLE) $(TEST_DEP_TABLE))
	@sh test/interop/install.sh

# What `make run` needs: the build only.
deps-build:
	@$(call install_deps,$(DEP_TABLE) $(OPT_DEP_TABLE))

$(B)/proto/%.proto: proto/%.proto
	@mkdir -p $(dir $@)
	$(call say,PROTO,$<)
	$(Q)sed -E 's/^([[:space:]]*)optional[[:space:]]+([A-Za-z0-9_.]+)[[:space:]]+([A-Za-z0-9_]+)[[:space:]]*=[[:space:]]*([0-9]+)[[:space:]]*;/\1oneof _\3 { \2 \3 = \4; }/' $< > $@

$(B)/gen/.stamp: $(PROTO_REWRITTEN)
	@mkdir -p $(B)/gen
	$(call say,PROTOC-C,$(B)/gen)
	$(Q)protoc-c --proto_path=$(B)/proto --c_out=$(B)/gen $(PROTO_REWRITTEN:$(B)/proto/%=%)
	@touch $@

$(PROTO_C) $(PROTO_H): $(B)/gen/.stamp ;

$(B)/obj/gen/%.o: $(B)/gen/%.c $(B)/.flags
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS_ALL) -Wno-missing-prototypes $(DEP_CFLAGS) -c $< -o $@

$(B)/obj/%.o: %.c $(B)/.flags $(B)/gen/.stamp
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS_ALL) $(DEP_CFLAGS) -c $< -o $@

# ar q (append, not r): a member whose base name repeats in another folder
# must not replace the first one.
$(LIB): $(AGENT_OBJ)
	@rm -f $@
	$(call say,AR,$@)
	$(Q)ar qcs $@ $^

$(B)/lookout: $(B)/obj/agent/main.o $(LIB)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL)

# --- tests
$(B)/test/%: test/unit/%.c $(LIB) $(B)/.flags
	@mkdir -p $(dir $@)
	$(call say,CCLD,$@)
	$(Q)$(CC) $(CFLAGS_ALL) $(DEP_CFLAGS) $(TEST_CFLAGS) -Itest/unit -o $@ $< $(LIB) \
	  $(LDFLAGS_ALL) $(LIBS_ALL) $(TEST_LIBS)

unit: check-test-deps $(UNIT_BIN)
	@UNIT_NAME=$(if $(SANITIZE),unit-san,unit) sh test/unit/run.sh $(UNIT_BIN)

unit-san:
	@$(MAKE) --no-print-directory SANITIZE=address,undefined unit

proto-check: check-test-deps
	@sh test/proto/check.sh

integration: check-test-deps $(B)/lookout
	@sh test/integration/run.sh

# Every integration test again, on an agent built with ASan+UBSan (about 2.5
# minutes). The reliability stage is left out: it measures RSS, which ASan's
# shadow memory and quarantine inflate.
integration-san: check-test-deps
	@$(MAKE) --no-print-directory SANITIZE=address,undefined build-san/lookout
	@LOOKOUT_BIN=build-san/lookout INTEGRATION_NAME=integration-san sh test/integration/run.sh

# Hostile clients, overload and failing backends (test/integration/test_hostile.py,
# test_overload.py, test_backends.py; `make integration` leaves them out), with a
# watchdog of their own (LOOKOUT_WATCHDOG, seconds).
RELIABILITY_WATCHDOG ?= 900
reliability: check-test-deps $(B)/lookout
	@LOOKOUT_WATCHDOG=$(RELIABILITY_WATCHDOG) INTEGRATION_NAME=reliability \
	  sh test/integration/run.sh test_hostile test_overload test_backends

# The disk spool under faults (test/integration/test_durability.py: a backend
# down 30 s, SIGTERM and kill -9 with data in the spool, disk full, a corrupt
# spool, reloads of storage), about 2 minutes, with a watchdog of its own. Its
# RESULT lines are also collected in build/durability-results.txt.
DURABILITY_WATCHDOG ?= 600
durability: check-test-deps $(B)/lookout
	@mkdir -p build && : > build/durability-results.txt
	@LOOKOUT_WATCHDOG=$(DURABILITY_WATCHDOG) INTEGRATION_NAME=durability \
	  LOOKOUT_RESULTS_FILE=build/durability-results.txt \
	  sh test/integration/run.sh test_durability

# build/lookout under valgrind with gRPC, HTTP and lines traffic, then SIGTERM.
valgrind-smoke: check-test-deps $(B)/lookout
	@sh test/valgrind/smoke.sh

# Every fuzz target for FUZZ_SMOKE_SECONDS (the fuzz stage of `make test`).
fuzz-smoke:
	@if [ "$(UNAME_S)" = Darwin ]; then echo "fuzz: skipped, no libFuzzer in Apple's clang"; \
	else $(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS) && \
	  echo "fuzz: $$(ls build-fuzz/fuzz/*_fuzz | wc -l | tr -d ' ') passed, 0 failed"; fi

# The official OpenTelemetry JavaScript SDK against build/lookout (npm install
# into build/interop-node on first use).
interop: check-test-deps $(B)/lookout
	@sh test/interop/run.sh

# Offline checks of compose/ and launchd/ (no Docker engine or launchd needed).
service-check: $(B)/lookout
	@sh compose/check.sh
	@sh launchd/check.sh

# The docs against the binary, both ways: metric names (a running agent's
# /metrics), config keys (the schema tables, proved with --check-config) and
# flags (--help) (test/docs/check.py).
docs-check: $(B)/lookout
	@LOOKOUT_BIN=$(B)/lookout sh test/docs/check.sh

# Each stage prints its summary lines only (its whole output when it fails,
# everything with V=1); the logs are in build/test-logs/.
STAGE = @V=$(V) sh test/stage.sh
test: deps
	@mkdir -p build && date +%s > build/.test-start
	$(STAGE) build $(MAKE) --no-print-directory all
	$(STAGE) unit $(MAKE) --no-print-directory unit
	$(STAGE) unit-san $(MAKE) --no-print-directory unit-san
	$(STAGE) proto $(MAKE) --no-print-directory proto-check
	$(STAGE) service $(MAKE) --no-print-directory service-check
	$(STAGE) docs $(MAKE) --no-print-directory docs-check
	$(STAGE) integration $(MAKE) --no-print-directory integration
	$(STAGE) integration-san $(MAKE) --no-print-directory integration-san
	$(STAGE) interop $(MAKE) --no-print-directory interop
	$(STAGE) reliability $(MAKE) --no-print-directory reliability
	$(STAGE) durability $(MAKE) --no-print-directory durability
	$(STAGE) valgrind $(MAKE) --no-print-directory valgrind-smoke
	$(STAGE) fuzz $(MAKE) --no-print-directory fuzz-smoke
	@echo "test: all stages passed in $$(( $$(date +%s) - $$(cat build/.test-start) ))s"

# --- install: PREFIX (Homebrew's prefix on macOS, else /usr/local) and DESTDIR
# (a staging root for packagers; the installed files still name PREFIX). The
# config is copied only when none is there: an edited config survives a
# reinstall. The binary is written beside the old one and renamed over it, so
# a running agent keeps its own file.
ifeq ($(UNAME_S),Darwin)
PREFIX ?= $(if $(BREW_PREFIX),$(BREW_PREFIX),/usr/local)
else
PREFIX ?= /usr/local
endif
DESTDIR ?=
BINDIR = $(PREFIX)/bin
SYSCONFDIR = $(PREFIX)/etc
MANDIR = $(PREFIX)/share/man
I_BIN = $(DESTDIR)$(BINDIR)
I_CONF = $(DESTDIR)$(SYSCONFDIR)/lookout
I_MAN = $(DESTDIR)$(MANDIR)/man8

install: deps-build
	@$(MAKE) --no-print-directory all
	@case '$(PREFIX)' in /?*) ;; *) echo "install: PREFIX must be an absolute path: '$(PREFIX)'"; exit 1 ;; esac
	install -d $(I_BIN) $(I_CONF) $(I_MAN)
	install -m 0755 $(B)/lookout $(I_BIN)/lookout.new
	mv -f $(I_BIN)/lookout.new $(I_BIN)/lookout
	install -m 0644 docs/lookout.8 $(I_MAN)/lookout.8
	@if [ -e $(I_CONF)/lookout.yaml ]; then \
	  echo "install: keeping $(I_CONF)/lookout.yaml (compare it with config/lookout.yaml)"; \
	  $(I_BIN)/lookout --check-config -c $(I_CONF)/lookout.yaml >/dev/null 2>&1 || \
	    echo "install: warning: $(I_CONF)/lookout.yaml does not validate here (lookout --check-config); its \$${VAR}s may be set only in the service's environment (lookout.env)"; \
	else echo "install -m 0644 config/lookout.yaml $(I_CONF)/lookout.yaml"; \
	  install -m 0644 config/lookout.yaml $(I_CONF)/lookout.yaml && \
	  $(I_BIN)/lookout --check-config -c $(I_CONF)/lookout.yaml >/dev/null || \
	    { echo "install: $(I_CONF)/lookout.yaml is not valid (lookout --check-config)"; exit 1; }; fi
	@echo "install: $(BINDIR)/lookout, config $(SYSCONFDIR)/lookout/lookout.yaml, man lookout(8)"

# Removes the binary and the man page; the config stays unless PURGE=1.
uninstall:
	@case '$(PREFIX)' in /?*) ;; *) echo "uninstall: PREFIX must be an absolute path: '$(PREFIX)'"; exit 1 ;; esac
	rm -f $(I_BIN)/lookout $(I_MAN)/lookout.8
	@if [ "$(PURGE)" = 1 ]; then echo "rm -rf $(I_CONF)"; rm -rf $(I_CONF); \
	elif [ -e $(I_CONF) ]; then echo "uninstall: keeping $(I_CONF) (make uninstall PURGE=1 removes it)"; fi

# The service on top of make install: launchd/install.sh renders the plist or
# unit for PREFIX and loads it (docs/service.md). No DESTDIR: these act on
# this machine.
SERVICE_SH = sh launchd/install.sh --prefix $(PREFIX)
no_destdir = @[ -z '$(DESTDIR)' ] || { echo "$@: DESTDIR makes no sense for a service on this machine"; exit 1; }
install-launchd:
	$(no_destdir)
	@[ "$(UNAME_S)" = Darwin ] || { echo "install-launchd: macOS only (make install-systemd on Linux)"; exit 1; }
	@$(MAKE) --no-print-directory install
	@$(SERVICE_SH)

uninstall-launchd:
	$(no_destdir)
	@[ "$(UNAME_S)" = Darwin ] || { echo "uninstall-launchd: macOS only"; exit 1; }
	@$(SERVICE_SH) --uninstall $(if $(filter 1,$(PURGE)),--purge)
	@$(MAKE) --no-print-directory uninstall

install-systemd:
	$(no_destdir)
	@[ "$(UNAME_S)" = Linux ] || { echo "install-systemd: Linux only (make install-launchd on macOS)"; exit 1; }
	@$(MAKE) --no-print-directory install
	@$(SERVICE_SH)

uninstall-systemd:
	$(no_destdir)
	@[ "$(UNAME_S)" = Linux ] || { echo "uninstall-systemd: Linux only"; exit 1; }
	@$(SERVICE_SH) --uninstall $(if $(filter 1,$(PURGE)),--purge)
	@$(MAKE) --no-print-directory uninstall

# The two README commands on a brand-new Debian 12 (debootstrap + chroot, as
# root; minutes, downloads packages). Not part of `make test`.
fresh-check:
	@sh test/fresh/check.sh

run: deps-build
	@$(MAKE) --no-print-directory all
	$(B)/lookout -c config/lookout.yaml

# Load generator (independent client: nghttp2 and sockets) and sink (lookout's
# own receivers, counting) for the benchmarks in test/bench/.
$(B)/bench/loadgen: test/bench/loadgen.c $(B)/.flags
	@mkdir -p $(dir $@)
	$(call say,CCLD,$@)
	$(Q)$(CC) $(CFLAGS_ALL) $(shell $(PKG_CONFIG) --cflags libnghttp2 zlib) -o $@ $< \
	  $(LDFLAGS_ALL) $(shell $(PKG_CONFIG) --libs libnghttp2 zlib)

$(B)/bench/sink: test/bench/sink.c $(LIB) $(B)/.flags
	@mkdir -p $(dir $@)
	$(call say,CCLD,$@)
	$(Q)$(CC) $(CFLAGS_ALL) $(DEP_CFLAGS) -o $@ $< $(LIB) $(LDFLAGS_ALL) $(LIBS_ALL)

# gzip (zlib, libdeflate), zstd and snappy on one export request.
CODEC_PKGS := zlib libzstd $(if $(CODEC_CFLAGS),libdeflate)
$(B)/bench/compress_bench: test/bench/compress_bench.c $(B)/.flags
	@mkdir -p $(dir $@)
	$(call say,CCLD,$@)
	$(Q)$(CC) $(CFLAGS_ALL) $(shell $(PKG_CONFIG) --cflags $(CODEC_PKGS)) -o $@ $< \
	  $(LDFLAGS_ALL) $(shell $(PKG_CONFIG) --libs $(CODEC_PKGS)) -lsnappy

# The prometheus exporter's ingest and render costs, in process.
$(B)/bench/prom_bench: test/bench/prom_bench.c $(LIB) $(B)/.flags
	@mkdir -p $(dir $@)
	$(call say,CCLD,$@)
	$(Q)$(CC) $(CFLAGS_ALL) $(DEP_CFLAGS) -o $@ $< $(LIB) $(LDFLAGS_ALL) $(LIBS_ALL)

# Throughput, agent CPU per item and RSS, median of 3 runs (test/bench/bench.py);
# the table is printed and written to build/bench/results.json.
BENCH_ARGS ?=
bench: deps
	@$(MAKE) --no-print-directory all $(B)/bench/loadgen $(B)/bench/sink $(B)/bench/prom_bench \
	  $(B)/bench/compress_bench
	@PY=/usr/bin/python3; [ -x $$PY ] || PY=python3; $$PY test/bench/bench.py $(BENCH_ARGS)

# --- fuzzing (clang only): test/fuzz/NAME_fuzz.c with corpus test/fuzz/corpus/NAME/
FUZZ_BIN := $(FUZZ_SRC:test/fuzz/%.c=$(B)/fuzz/%)
$(B)/fuzz/%: test/fuzz/%.c $(LIB) $(B)/.flags
	@mkdir -p $(dir $@)
	$(call say,CCLD,$@)
	$(Q)$(CC) $(CFLAGS_ALL) $(DEP_CFLAGS) -fsanitize=fuzzer -o $@ $< $(LIB) \
	  $(LDFLAGS_ALL) $(LIBS_ALL)

fuzz-bins: check-deps $(FUZZ_BIN)

# Runs every target for FUZZ_SECONDS on a scratch copy of its committed corpus.
fuzz:
	@$(MAKE) --no-print-directory FUZZ=1 fuzz-bins
	@set -e; for t in build-fuzz/fuzz/*_fuzz; do \
	  n=$$(basename $$t _fuzz); mkdir -p build-fuzz/corpus/$$n; \
	  echo "fuzz: $$n for $(FUZZ_SECONDS)s"; \
	  $$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 \
	    build-fuzz/corpus/$$n test/fuzz/corpus/$$n 2>build-fuzz/$$n.log || \
	    { tail -40 build-fuzz/$$n.log; exit 1; }; \
	done

format-check:
	clang-format --dry-run --Werror $(AGENT_SRC) agent/main.c

# Never while a fresh-check chroot has the host's /dev or /sys mounted in build/.
clean:
	@! grep -q ' $(CURDIR)/build/fresh/root/' /proc/self/mounts 2>/dev/null || \
	  { echo "clean: a fresh-check chroot is mounted under build/fresh/root; not removing build/"; exit 1; }
	rm -rf build build-san build-fuzz

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)
