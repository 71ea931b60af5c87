# msreg — build, run, test.
#
#   make            bin/msregd and bin/msreg
#   make run        install missing deps, start a local PostgreSQL under var/, serve
#   make check      unit tests, integration tests against a real cluster, browser tests
#   make browser    the web console in headless Chromium (tests/browser/)
#   make bench      benchmarks (bounded; prints figures and ratios)
#   make fuzz       bounded libFuzzer runs of every parser
#   make lint       cppcheck + clang-tidy
#   make SANITIZE=address,undefined ...   build everything with sanitizers

# libcurl is linked into bin/msreg and the tests only (cli_audit.c): msregd has
# no HTTP client (`nm bin/msregd | grep -i curl` is empty).
PKGS      := libmicrohttpd libpq jansson libsodium inih libsystemd libcrypto
CC        ?= cc
BUILD     := build
BIN       := bin

WARN      := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
             -Wpointer-arith -Wformat=2
ifdef CI
WARN      += -Werror
endif
OPT       ?= -O2 -g
CFLAGS    += -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) -Iinclude -pthread
ifdef SANITIZE
CFLAGS    += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
LDFLAGS   += -fsanitize=$(SANITIZE)
endif

# pkg-config is asked lazily so that `make deps` works before the libraries exist.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_LIBS = $(shell pkg-config --libs check 2>/dev/null)
CURL_LIBS  = $(shell pkg-config --libs libcurl 2>/dev/null)
CURL_CFLAGS = $(shell pkg-config --cflags libcurl 2>/dev/null)

MAINS     := server/msregd.c server/msreg.c
LIB_SRC   := $(filter-out $(MAINS),$(wildcard server/*.c))
# msreg's HTTP client commands (libcurl) go into bin/msreg only, never msregd.
CLIENT_OBJ := $(BUILD)/cli_client.o
LIB_SRC   := $(filter-out server/cli_client.c,$(LIB_SRC))
LIB_OBJ   := $(LIB_SRC:server/%.c=$(BUILD)/%.o) $(BUILD)/embedded.o
EMBED     := $(sort $(wildcard sql/[0-9]*.sql)) server/openapi.json \
             $(sort $(wildcard server/ui/*))
UNIT_SRC  := $(wildcard tests/check_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/%.c=$(BUILD)/tests/%)
IT_SRC    := $(wildcard tests/it_*.c)
IT_BIN    := $(IT_SRC:tests/%.c=$(BUILD)/tests/%)
HARNESS   := $(BUILD)/tests/harness.o
BROWSER   := $(BUILD)/tests/browser_driver
BENCH_SRC := $(wildcard tests/bench/*.c)
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)

.PHONY: all run check unit integration browser bench fuzz lint clean deps
all: deps-ok $(BIN)/msregd $(BIN)/msreg

.PHONY: deps-ok
deps-ok:
	@pkg-config --exists $(PKGS) check libcurl 2>/dev/null || deploy/install-deps.sh

$(BUILD)/%.o: server/%.c $(wildcard include/msreg/*.h) | $(BUILD)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $(CURL_CFLAGS) -c $< -o $@

$(BUILD)/embedded.c: $(EMBED) deploy/embed.sh | $(BUILD)
	deploy/embed.sh $@ $(EMBED)

$(BUILD)/embedded.o: $(BUILD)/embedded.c include/msreg/embedded.h
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libmsreg.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BIN)/msregd: $(BUILD)/msregd.o $(BUILD)/libmsreg.a | $(BIN)
	$(CC) $(LDFLAGS) -pthread -o $@ $^ $(PKG_LIBS) -lm

$(BIN)/msreg: $(BUILD)/msreg.o $(CLIENT_OBJ) $(BUILD)/libmsreg.a | $(BIN)
	$(CC) $(LDFLAGS) -pthread -o $@ $^ $(PKG_LIBS) $(CURL_LIBS) -lm

$(BUILD)/tests/%: tests/%.c $(BUILD)/libmsreg.a $(HARNESS) $(wildcard include/msreg/*.h tests/*.h) | $(BUILD)/tests
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Itests -o $@ $< $(HARNESS) $(BUILD)/libmsreg.a \
	    $(LDFLAGS) $(PKG_LIBS) $(CHECK_LIBS) $(CURL_LIBS) -lm

$(BROWSER): tests/browser/driver.c $(BUILD)/libmsreg.a $(HARNESS) tests/harness.h | $(BUILD)/tests
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Itests -o $@ $< $(HARNESS) $(BUILD)/libmsreg.a \
	    $(LDFLAGS) $(PKG_LIBS) $(CHECK_LIBS) $(CURL_LIBS) -lm

$(HARNESS): tests/harness.c tests/harness.h | $(BUILD)/tests
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Itests -c $< -o $@

$(BUILD)/bench/%: tests/bench/%.c tests/bench/bench.h $(BUILD)/libmsreg.a $(HARNESS) | $(BUILD)/bench
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Itests -o $@ $< $(HARNESS) $(BUILD)/libmsreg.a \
	    $(LDFLAGS) $(PKG_LIBS) $(CHECK_LIBS) $(CURL_LIBS) -lm

$(BUILD) $(BUILD)/tests $(BUILD)/bench $(BIN):
	mkdir -p $@

run: all
	deploy/run.sh

unit: all $(UNIT_BIN)
	@fail=0; for t in $(UNIT_BIN); do \
	    CK_DEFAULT_TIMEOUT=120 $$t || fail=1; done; exit $$fail

integration: all $(IT_BIN)
	tests/run-integration.sh $(IT_BIN)

# the web console in Debian's Chromium (tests/browser/run.sh)
browser: all $(BROWSER)
	tests/browser/run.sh $(BROWSER)

check: unit integration browser

bench: all $(BENCH_BIN)
	tests/bench/run.sh

fuzz: deps-ok $(BUILD)/embedded.c
	tests/fuzz/run.sh

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	    --inline-suppr -Iinclude server tests/*.c
	clang-tidy --quiet server/*.c -- -std=c11 -D_GNU_SOURCE -Iinclude $(PKG_CFLAGS)

deps:
	deploy/install-deps.sh

clean:
	rm -rf $(BUILD) $(BIN)
