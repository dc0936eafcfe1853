# pchat build. `make` builds; `make test` installs, builds and runs every suite (plain and
# under ASan+UBSan); `make run` installs, builds and starts a local pool.
# Plain GNU make. Objects and binaries go to $(BUILD) (build/, or build-asan/ when
# SANITIZE=1), so both builds can coexist.

SANITIZE ?=
FUZZ ?=
ifeq ($(SANITIZE),1)
BUILD ?= build-asan
SAN_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
OPT ?= -O1
else
BUILD ?= build
SAN_FLAGS =
OPT ?= -O2
endif
ifeq ($(FUZZ),1)
# libFuzzer targets (make fuzz-build): the whole library instrumented for coverage.
BUILD = build-fuzz
CC = clang
# uthash's hash macros fall through on purpose; clang (unlike gcc) warns inside them.
SAN_FLAGS = -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined \
            -fno-omit-frame-pointer -Wno-implicit-fallthrough
OPT = -O1
endif

CC ?= cc
WARN = -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes \
       -Wimplicit-fallthrough -Werror=implicit-function-declaration -Wno-missing-field-initializers
HARDEN = -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIE
PKGS = libuv libosip2 libxml-2.0 openssl inih jansson sqlite3 raft libmicrohttpd libcurl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS = -std=c11 -D_GNU_SOURCE -g $(OPT) $(WARN) $(HARDEN) $(SAN_FLAGS) -I. $(PKG_CFLAGS) -MMD -MP
LDFLAGS = -pie -Wl,-z,relro,-z,now $(SAN_FLAGS)
LIBS = $(PKG_LIBS) -lrocksdb -lpthread -lm

# Library modules, in dependency order (see DESIGN.md §5).
MODULES = common storage cluster compliance compliance/adapters chat/xccos chat/sip chat chat/client search web
# Each program is cmd/<name>/main.c; its other files go into the library so tests reach them.
CMD_LIB_SRCS = $(filter-out %/main.c,$(wildcard cmd/*/*.c))
LIB_SRCS = $(foreach m,$(MODULES),$(wildcard $(m)/*.c)) $(CMD_LIB_SRCS)
LIB_OBJS = $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIB = $(BUILD)/libpchat.a

CMDS = pchatd pchat pchatctl pchat-bench
CMD_BINS = $(CMDS:%=$(BUILD)/bin/%)

TEST_LIB_SRCS = $(wildcard tests/lib/*.c)
TEST_LIB_OBJS = $(TEST_LIB_SRCS:%.c=$(BUILD)/%.o)
UNIT_SRCS = $(wildcard tests/unit/test_*.c)
UNIT_BINS = $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/unit/%)
INTEG_SRCS = $(wildcard tests/integration/test_*.c)
INTEG_BINS = $(INTEG_SRCS:tests/integration/%.c=$(BUILD)/tests/integration/%)
# The consistency checker over test logs (pchat-check --help); tests/checker/selftest.sh tests it.
CHECK_SRCS = $(wildcard tests/checker/*.c)
CHECK_OBJS = $(CHECK_SRCS:%.c=$(BUILD)/%.o)
CHECK_BIN = $(BUILD)/bin/pchat-check
# The chaos run's client side: posters, history dumps, report (tests/chaos/run, make chaos).
CHAOS_BIN = $(BUILD)/bin/pchat-chaos
# The bare-raft yardstick `make bench` prints beside the pool's figures (tests/bench/).
RAFT_BARE_BIN = $(BUILD)/bench/raft_bare

# A headless libpurple + SIPE client (the real Lync-protocol client code) for the interop
# test. Built without sanitizers in both builds: it tests the server, and libpurple's own
# leaks are not ours to report.
INTEROP_BIN = $(BUILD)/tests/interop/purple_interop
PURPLE_FLAGS := $(shell pkg-config --cflags --libs purple libxml-2.0 2>/dev/null)

.PHONY: all bench chaos soak deps test test-unit test-integration check-asan run stop clean fuzz fuzz-build fuzz-targets
all: $(CMD_BINS) $(CHECK_BIN) $(CHAOS_BIN) $(RAFT_BARE_BIN) $(UNIT_BINS) $(INTEG_BINS) $(if $(PURPLE_FLAGS),$(INTEROP_BIN))

# The page is built into the binary (web/web_page.c .incbin's it).
$(BUILD)/web/web_page.o: web/static/index.html

# Fuzzing: `make fuzz-build` builds build-fuzz/ with clang; `make fuzz FUZZ_TIME=60` runs
# every target that long (tests/fuzz/run says how; `make test` runs each briefly).
FUZZ_SRCS = $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS = $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_TIME ?= 60
fuzz-build:
	@$(MAKE) --no-print-directory FUZZ=1 fuzz-targets
fuzz-targets: $(FUZZ_BINS) $(BUILD)/fuzz/make_seeds
fuzz: fuzz-build
	@tests/fuzz/run $(FUZZ_TIME)
$(BUILD)/fuzz/fuzz_%: $(BUILD)/tests/fuzz/fuzz_%.o $(LIB)
	@mkdir -p $(dir $@)
	@echo "  LD $@"
	@$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $< $(LIB) $(LIBS)
$(BUILD)/fuzz/make_seeds: $(BUILD)/tests/fuzz/make_seeds.o $(LIB)
	@mkdir -p $(dir $@)
	@echo "  LD $@"
	@$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LIBS)

$(INTEROP_BIN): tests/interop/purple_interop.c
	@mkdir -p $(dir $@)
	@echo "  LD $@"
	@$(CC) -std=gnu11 -g -O1 $(WARN) -o $@ $< $(PURPLE_FLAGS) -ldl -rdynamic

deps:
	@deploy/install-deps

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	@$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	@rm -f $@
	@echo "  AR $@"
	@ar rcs $@ $^

$(BUILD)/bin/%: $(BUILD)/cmd/%/main.o $(LIB)
	@mkdir -p $(dir $@)
	@echo "  LD $@"
	@$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LIBS)

$(CHECK_BIN): $(CHECK_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	@echo "  LD $@"
	@$(CC) $(LDFLAGS) -o $@ $(CHECK_OBJS) $(LIB) $(LIBS)

$(CHAOS_BIN): $(BUILD)/tests/chaos/chaos.o $(TEST_LIB_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	@echo "  LD $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LIB) $(LIBS) -lcmocka

$(RAFT_BARE_BIN): $(BUILD)/tests/bench/raft_bare.o $(LIB)
	@mkdir -p $(dir $@)
	@echo "  LD $@"
	@$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LIBS)

$(BUILD)/tests/unit/%: $(BUILD)/tests/unit/%.o $(TEST_LIB_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	@echo "  LD $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LIB) $(LIBS) -lcmocka

$(BUILD)/tests/integration/%: $(BUILD)/tests/integration/%.o $(TEST_LIB_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	@echo "  LD $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LIB) $(LIBS) -lcmocka



# `make test` = deps + both builds + every suite, ending in one "N passed, N failed" line.
test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory SANITIZE=1 all
	@tests/run

test-unit: all
	@tests/run unit

test-integration: all
	@tests/run integration

# Benchmarks (not part of `make test`): a fresh pool on loopback, the standard scenarios
# through pchat-bench, and the bare-raft yardstick; MODE=single|pool|both (default both).
# Table on stdout, JSON in build/bench/results.json. Takes about 5 minutes.
MODE ?= both
bench: all
	@tests/bench/run $(MODE)

# The chaos run (root and network namespaces needed): a 3-host pool under load while a
# seeded nemesis partitions, kills, pauses and degrades it; then pchat-check and a summary
# table (tests/chaos/run --help). DURATION in seconds; SEED to replay a run's choices.
DURATION ?= 120
SEED ?=
chaos: all
	@tests/chaos/run --duration $(DURATION) $(if $(SEED),--seed $(SEED))

# The soak (not in CI): a 3-node pool under an hour of mixed load, RSS per node sampled every
# 30 s and its growth after the warm-up reported (tests/soak/run says what load).
SOAK_MINUTES ?= 60
soak: all
	@tests/soak/run $(SOAK_MINUTES)

check-asan: deps
	@$(MAKE) --no-print-directory SANITIZE=1 all
	@tests/run --asan-only

run: deps
	@$(MAKE) --no-print-directory all
	@deploy/pool run

stop:
	@deploy/pool stop

clean:
	rm -rf build build-asan build-fuzz

# Header dependencies of every object, tests included (a stale test object compiled
# against an old struct layout fails in confusing ways).
-include $(LIB_OBJS:.o=.d) $(TEST_LIB_OBJS:.o=.d) $(CHECK_OBJS:.o=.d) $(CMDS:%=$(BUILD)/cmd/%/main.d) \
         $(BUILD)/tests/bench/raft_bare.d $(BUILD)/tests/chaos/chaos.d \
         $(UNIT_BINS:=.d) $(INTEG_BINS:=.d)
