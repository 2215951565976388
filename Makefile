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

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# libcurl is not linked: common/curl_loader.c loads it when first needed.
PKG_LIBS   = $(shell pkg-config --libs $(filter-out libcurl,$(PKGS)) 2>/dev/null)
CFLAGS_OURS := -std=gnu11 -g $(OPT) -Wall -Wextra -Werror -Wshadow \
	-Wno-unused-parameter -Icommon -I$(BUILD)/gen -I$(LLHTTP_INC) $(PKG_CFLAGS)
CFLAGS_LLHTTP := -std=gnu11 -g $(OPT) -I$(LLHTTP_INC)
LDFLAGS_ALL := $(OPT) $(PKG_LIBS) -lm

COMMON_SRC := $(wildcard common/*.c)
COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/stat.pb-c.o \
	$(BUILD)/obj/llhttp/llhttp.o $(BUILD)/obj/llhttp/api.o $(BUILD)/obj/llhttp/http.o
# Each program's modules other than main.c also go into a library, so unit
# tests can link them.
QP_OBJ     := $(patsubst %.c,$(BUILD)/obj/%.o,$(filter-out queue-proxy/main.c,$(wildcard queue-proxy/*.c)))
ACT_OBJ    := $(patsubst %.c,$(BUILD)/obj/%.o,$(filter-out activator/main.c,$(wildcard activator/*.c)))
HELLO_OBJ  := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard examples/helloworld/*.c))
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
# Small programs the end-to-end tests drive (one .c each).
TOOL_SRC   := $(wildcard tests/tools/*.c)
TOOL_BIN   := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tools/%)
PROGRAMS   := $(BUILD)/queue-proxy $(BUILD)/helloworld
ifneq ($(wildcard activator/main.c),)
PROGRAMS   += $(BUILD)/activator
endif
# Activator unit tests include the module they test (its statics too).
PROGRAM_LIBS := $(BUILD)/libqueueproxy.a

.SECONDARY:
.PHONY: all deps test test-asan unit e2e run bench soak clean format help fuzz
all: $(PROGRAMS) $(UNIT_BIN) $(TOOL_BIN)

help:
	@echo "make deps       install missing Debian packages (apt-get, needs root)"
	@echo "make            build everything into $(BUILD)/"
	@echo "make run        build and run the demo"
	@echo "make test       deps + build + unit tests + end-to-end tests"
	@echo "make test-asan  the same under AddressSanitizer + UBSan (build-asan/)"
	@echo "make bench      run every benchmark in bench/ (or: bash bench/NAME)"
	@echo "make soak       an hour of load and scaling, activator memory sampled"
	@echo "make format     clang-format our sources"
	@echo "make fuzz       libFuzzer targets under ASan+UBSan, FUZZ_SECONDS (30) each (build-fuzz/)"

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  if [ "$$(id -u)" != 0 ]; then echo "make deps: need root to install:" $$missing >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(BUILD)/gen/stat.pb-c.c $(BUILD)/gen/stat.pb-c.h &: common/stat.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=common --c_out=$(BUILD)/gen common/stat.proto

$(BUILD)/obj/gen/stat.pb-c.o: $(BUILD)/gen/stat.pb-c.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_LLHTTP) $(PKG_CFLAGS) -c $< -o $@

$(BUILD)/obj/llhttp/%.o: $(LLHTTP_SRC)/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_LLHTTP) -c $< -o $@

$(BUILD)/obj/%.o: %.c $(BUILD)/gen/stat.pb-c.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_OURS) -MMD -MP -c $< -o $@

$(BUILD)/libkp.a: $(COMMON_OBJ)
	ar rcs $@ $^

$(BUILD)/libqueueproxy.a: $(QP_OBJ)
	rm -f $@; ar rcs $@ $^

$(BUILD)/libactivator.a: $(ACT_OBJ)
	rm -f $@; ar rcs $@ $^

$(BUILD)/queue-proxy: $(BUILD)/obj/queue-proxy/main.o $(BUILD)/libqueueproxy.a $(BUILD)/libkp.a
	$(CC) -o $@ $^ $(LDFLAGS_ALL)

$(BUILD)/activator: $(BUILD)/obj/activator/main.o $(BUILD)/libactivator.a $(BUILD)/libkp.a
	$(CC) -o $@ $^ $(LDFLAGS_ALL)

$(BUILD)/helloworld: $(HELLO_OBJ) $(BUILD)/libkp.a
	$(CC) -o $@ $^ $(LDFLAGS_ALL)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(PROGRAM_LIBS) $(BUILD)/libkp.a
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(LDFLAGS_ALL) -lcmocka

$(BUILD)/tools/%: $(BUILD)/obj/tests/tools/%.o $(BUILD)/libkp.a
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(LDFLAGS_ALL)

unit: $(UNIT_BIN)
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
