# Build, test and run everything. `make help` lists the targets.
#
# Our code is compiled with -Wall -Wextra -Werror; llhttp's C sources come
# from Debian's node-llhttp package and keep their own, laxer flags.

BUILD      ?= build
SANITIZE   ?=
CC         ?= cc
PKGS       := libuv libcurl libcjson libprotobuf-c
LLHTTP_SRC := /usr/share/llhttp
LLHTTP_INC := /usr/share/include/llhttp

DEB_PACKAGES := build-essential pkg-config libuv1-dev libcurl4-openssl-dev \
	libcjson-dev node-llhttp libprotobuf-c-dev protobuf-c-compiler \
	libcmocka-dev python3-pytest python3-yaml curl openssl hey wrk haproxy prometheus gnuplot-nox clang

OPT        := -O2
ifneq ($(SANITIZE),)
OPT        := -O1 -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=undefined
endif
# libFuzzer builds (tests/fuzz/fuzz.mk): every object gets coverage
# instrumentation; only the fuzz targets link libFuzzer's main.
ifeq ($(SANITIZE),fuzz)
OPT        += -fsanitize=fuzzer-no-link
endif

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# libcurl is not linked: common/kube/curl_loader.c loads it when first needed.
PKG_LIBS   = $(shell pkg-config --libs $(filter-out libcurl,$(PKGS)) 2>/dev/null)
CFLAGS_OURS := -std=gnu11 -g $(OPT) -Wall -Wextra -Werror -Wshadow \
	-Wno-unused-parameter -Icommon -I. -I$(BUILD)/gen -I$(LLHTTP_INC) $(PKG_CFLAGS)
CFLAGS_LLHTTP := -std=gnu11 -g $(OPT) -I$(LLHTTP_INC)
LDFLAGS_ALL := $(OPT) $(PKG_LIBS) -lm

# One static library per source folder, named after it; scripts/check_layout.py
# says which folder may use which. A program links its own folders' libraries,
# then the common ones it uses, most dependent first. main.c stays out of
# the libraries, so unit tests can link any of them.
objs_of = $(patsubst %.c,$(BUILD)/obj/%.o,$(filter-out %/main.c,$(wildcard $(1)/*.c)))
LLHTTP_OBJ := $(BUILD)/obj/llhttp/llhttp.o $(BUILD)/obj/llhttp/api.o $(BUILD)/obj/llhttp/http.o

LIB_BASE        := $(BUILD)/libkp_base.a
LIB_HTTP        := $(BUILD)/libkp_http.a
LIB_KUBE        := $(BUILD)/libkp_kube.a
LIB_AUTOSCALING := $(BUILD)/libkp_autoscaling.a
LIB_QP          := $(BUILD)/libqueueproxy.a
LIB_ACT         := $(BUILD)/libactivator.a
LIB_ACT_BACKEND := $(BUILD)/libactivator_backend.a
LIB_ACT_CONFIG  := $(BUILD)/libactivator_config.a
LIB_HELLO       := $(BUILD)/libhelloworld.a

$(LIB_BASE):        $(call objs_of,common/base)
$(LIB_HTTP):        $(call objs_of,common/http) $(LLHTTP_OBJ)
$(LIB_KUBE):        $(call objs_of,common/kube)
$(LIB_AUTOSCALING): $(call objs_of,common/autoscaling) $(BUILD)/obj/gen/stat.pb-c.o
$(LIB_QP):          $(call objs_of,queue-proxy)
$(LIB_ACT):         $(call objs_of,activator)
$(LIB_ACT_BACKEND): $(call objs_of,activator/backend)
$(LIB_ACT_CONFIG):  $(call objs_of,activator/config)
$(LIB_HELLO):       $(call objs_of,examples/helloworld)

QP_LIBS    := $(LIB_QP) $(LIB_HTTP) $(LIB_AUTOSCALING) $(LIB_BASE)
ACT_LIBS   := $(LIB_ACT) $(LIB_ACT_BACKEND) $(LIB_ACT_CONFIG) $(LIB_HTTP) $(LIB_KUBE) \
	$(LIB_AUTOSCALING) $(LIB_BASE)
HELLO_LIBS := $(LIB_HELLO) $(LIB_HTTP) $(LIB_BASE)
# Tests may use any folder; an archive member is linked only when needed.
TEST_LIBS  := $(LIB_ACT) $(LIB_ACT_BACKEND) $(LIB_ACT_CONFIG) $(LIB_QP) $(LIB_HELLO) \
	$(LIB_HTTP) $(LIB_KUBE) $(LIB_AUTOSCALING) $(LIB_BASE)

UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
# Small programs the end-to-end tests drive (one .c each).
TOOL_SRC   := $(wildcard tests/tools/*.c)
TOOL_BIN   := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tools/%)
PROGRAMS   := $(BUILD)/queue-proxy $(BUILD)/activator $(BUILD)/helloworld

.SECONDARY:
.PHONY: all deps test test-asan unit e2e run bench soak clean format help fuzz layout
all: $(PROGRAMS) $(UNIT_BIN) $(TOOL_BIN)

help:
	@echo "make deps       install missing Debian packages (apt-get, needs root)"
	@echo "make            build everything into $(BUILD)/"
	@echo "make run        build and run the demo"
	@echo "make test       deps + build + unit tests + end-to-end tests"
	@echo "make test-asan  the same under AddressSanitizer + UBSan (build-asan/)"
	@echo "make layout     check which source folder includes which (scripts/check_layout.py)"
	@echo "make bench      run every benchmark in bench/ (or: bash bench/NAME)"
	@echo "make soak       an hour of load and scaling, activator memory sampled"
	@echo "make format     clang-format our sources"
	@echo "make fuzz       libFuzzer targets under ASan+UBSan, FUZZ_SECONDS (30) each (build-fuzz/)"
	@echo "make fuzz-long  each target until FUZZ_RUNS (10^7) executions, one after the other;"
	@echo "                FUZZ_ONLY=\"upstream kube_objects\" picks targets (tests/fuzz/fuzz.mk)"
	@echo "make fuzz-regress  replay the fuzz seeds and tests/fuzz/regressions/ once (as CI does)"

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  if [ "$$(id -u)" != 0 ]; then echo "make deps: need root to install:" $$missing >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(BUILD)/gen/stat.pb-c.c $(BUILD)/gen/stat.pb-c.h &: common/autoscaling/stat.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=common/autoscaling --c_out=$(BUILD)/gen common/autoscaling/stat.proto

$(BUILD)/obj/gen/stat.pb-c.o: $(BUILD)/gen/stat.pb-c.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_LLHTTP) $(PKG_CFLAGS) -c $< -o $@

$(BUILD)/obj/llhttp/%.o: $(LLHTTP_SRC)/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_LLHTTP) -c $< -o $@

$(BUILD)/obj/%.o: %.c $(BUILD)/gen/stat.pb-c.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_OURS) -MMD -MP -c $< -o $@

$(BUILD)/lib%.a:
	rm -f $@; ar rcs $@ $^

$(BUILD)/queue-proxy: $(BUILD)/obj/queue-proxy/main.o $(QP_LIBS)
	$(CC) -o $@ $^ $(LDFLAGS_ALL)

$(BUILD)/activator: $(BUILD)/obj/activator/main.o $(ACT_LIBS)
	$(CC) -o $@ $^ $(LDFLAGS_ALL)

$(BUILD)/helloworld: $(BUILD)/obj/examples/helloworld/main.o $(HELLO_LIBS)
	$(CC) -o $@ $^ $(LDFLAGS_ALL)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(TEST_LIBS)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(LDFLAGS_ALL) -lcmocka

$(BUILD)/tools/%: $(BUILD)/obj/tests/tools/%.o $(TEST_LIBS)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(LDFLAGS_ALL)

# Which folder may include which: see scripts/check_layout.py.
layout:
	/usr/bin/python3 scripts/check_layout.py

unit: layout $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

e2e: $(PROGRAMS) $(TOOL_BIN)
	KP_BUILD=$(abspath $(BUILD)) /usr/bin/python3 -m pytest -q -x tests/e2e

test: deps
	$(MAKE) all
	$(MAKE) unit
	$(MAKE) e2e

test-asan: deps
	$(MAKE) BUILD=build-asan SANITIZE=1 all
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(MAKE) BUILD=build-asan SANITIZE=1 unit e2e

run: deps
	$(MAKE) all
	bash scripts/run.sh $(BUILD)

BENCHES := queue-proxy activator cold-start seed-demo held-memory
bench: deps all
	@set -e; for b in $(BENCHES); do echo "== bench/$$b"; bash bench/$$b; done

# An hour of mixed load and scaling with the activator's memory sampled
# (SOAK_MINUTES to shorten); not part of make test.
soak: deps all
	bash bench/soak

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-fuzz

-include tests/fuzz/fuzz.mk

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
