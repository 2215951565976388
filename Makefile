# Build, test and run everything. `make help` lists the targets.
#
# Our code is compiled with -Wall -Wextra -Werror; llhttp's C sources come
# from Debian's node-llhttp package and keep their own, laxer flags.

# `make` alone builds the programs and tests (the first rule below is a
# library's).
.DEFAULT_GOAL := all

BUILD      ?= build
SANITIZE   ?=
CC         ?= cc
PKGS       := libuv libcurl libcjson libprotobuf-c libnghttp2
LLHTTP_SRC := /usr/share/llhttp
LLHTTP_INC := /usr/share/include/llhttp

# Debian packages, by what needs them (scripts/deps.sh installs the missing
# ones). Running: the compiler, the libraries, and the clients make run's
# banner suggests.
DEB_RUN   := build-essential pkg-config libuv1-dev libcurl4-openssl-dev \
	libcjson-dev node-llhttp libprotobuf-c-dev protobuf-c-compiler libnghttp2-dev \
	curl hey
# Testing: cmocka (unit), pytest and PyYAML (e2e), openssl (the fake API
# server's certificates), promtool from prometheus (metrics are linted),
# clang (libFuzzer targets: CI replays them), kubectl (kustomize renders
# config/kubernetes; any kubectl already on the PATH will do), the HTTP/2
# clients (nghttp2-client's nghttp and h2load, python3-h2 for raw frames,
# python3-grpcio for gRPC).
DEB_TEST  := libcmocka-dev python3-pytest python3-yaml openssl prometheus clang \
	kubernetes-client=kubectl nghttp2-client python3-h2 python3-grpcio
# Benchmarking: the programs we compare with and the ones that measure and plot
# (h2load, from nghttp2-client, for bench/http2).
DEB_BENCH := haproxy wrk jq python3 gnuplot-nox nghttp2-client

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
LIB_ACT_KNATIVE := $(BUILD)/libactivator_knative.a
LIB_HELLO       := $(BUILD)/libhelloworld.a

$(LIB_BASE):        $(call objs_of,common/base)
$(LIB_HTTP):        $(call objs_of,common/http) $(LLHTTP_OBJ)
$(LIB_KUBE):        $(call objs_of,common/kube)
$(LIB_AUTOSCALING): $(call objs_of,common/autoscaling) $(BUILD)/obj/gen/stat.pb-c.o
$(LIB_QP):          $(call objs_of,queue-proxy)
$(LIB_ACT):         $(call objs_of,activator)
$(LIB_ACT_BACKEND): $(call objs_of,activator/backend)
$(LIB_ACT_CONFIG):  $(call objs_of,activator/config)
$(LIB_ACT_KNATIVE): $(call objs_of,activator/knative)
$(LIB_HELLO):       $(call objs_of,examples/helloworld)

QP_LIBS    := $(LIB_QP) $(LIB_HTTP) $(LIB_AUTOSCALING) $(LIB_BASE)
ACT_LIBS   := $(LIB_ACT) $(LIB_ACT_KNATIVE) $(LIB_ACT_BACKEND) $(LIB_ACT_CONFIG) $(LIB_HTTP) \
	$(LIB_KUBE) \
	$(LIB_AUTOSCALING) $(LIB_BASE)
HELLO_LIBS := $(LIB_HELLO) $(LIB_HTTP) $(LIB_BASE)
# Tests may use any folder; an archive member is linked only when needed.
TEST_LIBS  := $(LIB_ACT) $(LIB_ACT_KNATIVE) $(LIB_ACT_BACKEND) $(LIB_ACT_CONFIG) $(LIB_QP) $(LIB_HELLO) \
	$(LIB_HTTP) $(LIB_KUBE) $(LIB_AUTOSCALING) $(LIB_BASE)

UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
# Small programs the end-to-end tests drive (one .c each).
TOOL_SRC   := $(wildcard tests/tools/*.c)
TOOL_BIN   := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tools/%)
PROGRAMS   := $(BUILD)/queue-proxy $(BUILD)/activator $(BUILD)/helloworld

# What every program prints with --version: VERSION plus the commit it was
# built from (scripts/version.sh). The header is rewritten only when that
# text changes, so a new commit relinks the programs and nothing else.
KP_VERSION := $(shell sh scripts/version.sh)
$(BUILD)/gen/kp_version.h: FORCE
	@mkdir -p $(dir $@)
	@printf '#define KP_VERSION "%s"\n' '$(KP_VERSION)' >$@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi
$(BUILD)/obj/activator/main.o $(BUILD)/obj/queue-proxy/main.o \
	$(BUILD)/obj/examples/helloworld/main.o: $(BUILD)/gen/kp_version.h
.PHONY: FORCE
FORCE:

.SECONDARY:
.PHONY: all deps deps-run deps-test deps-bench test test-asan unit e2e run bench soak clean format help fuzz layout
all: $(PROGRAMS) $(UNIT_BIN) $(TOOL_BIN)

help:
	@echo "make deps       install every missing Debian package (apt-get, needs root):"
	@echo "                deps-run + deps-test + deps-bench"
	@echo "make deps-run   only what building and running needs (make run installs these)"
	@echo "make deps-test  that + the test tools (make test, test-asan, fuzz install these)"
	@echo "make deps-bench that + the benchmark tools (make bench, soak install these)"
	@echo "make            build everything into $(BUILD)/"
	@echo "make run        build and run the demo"
	@echo "make test       deps-test + build + unit tests + end-to-end tests"
	@echo "make test-asan  the same under AddressSanitizer + UBSan (build-asan/)"
	@echo "make layout     check which source folder includes which (scripts/check_layout.py)"
	@echo "make bench      run every benchmark in bench/ (or: bash bench/NAME)"
	@echo "make soak       an hour of load and scaling, activator memory sampled"
	@echo "make format     clang-format our sources"
	@echo "make fuzz       libFuzzer targets under ASan+UBSan, FUZZ_SECONDS (30) each (build-fuzz/)"
	@echo "make fuzz-long  each target until FUZZ_RUNS (10^7) executions, one after the other;"
	@echo "                FUZZ_ONLY=\"upstream kube_objects\" picks targets (tests/fuzz/fuzz.mk)"
	@echo "make fuzz-regress  replay the fuzz seeds and tests/fuzz/regressions/ once (as CI does)"

# Each installs what is missing in one apt-get run (apt's output shown).
deps-run:
	@sh scripts/deps.sh "to build and run" $(DEB_RUN)
deps-test:
	@sh scripts/deps.sh "to build and test" $(DEB_RUN) $(DEB_TEST)
deps-bench:
	@sh scripts/deps.sh "to build and benchmark" $(DEB_RUN) $(DEB_BENCH)
deps:
	@sh scripts/deps.sh "everything: run, test, bench" $(DEB_RUN) $(DEB_TEST) $(DEB_BENCH)

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

test: deps-test
	$(MAKE) all
	$(MAKE) unit
	$(MAKE) e2e

test-asan: deps-test
	$(MAKE) BUILD=build-asan SANITIZE=1 all
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(MAKE) BUILD=build-asan SANITIZE=1 unit e2e

run: deps-run
	$(MAKE) all
	bash scripts/run.sh $(BUILD)

BENCHES := queue-proxy activator cold-start seed-demo held-memory scale http2 reconcile
bench: deps-bench all
	@set -e; for b in $(BENCHES); do echo "== bench/$$b"; bash bench/$$b; done

# An hour of mixed load and scaling with the activator's memory sampled
# (SOAK_MINUTES to shorten); not part of make test.
soak: deps-bench all
	bash bench/soak

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-fuzz

-include tests/fuzz/fuzz.mk

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
