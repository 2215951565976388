# libFuzzer targets (tests/fuzz/fuzz_*.c), built with clang under ASan and
# UBSan into build-fuzz/. Included by the Makefile.
#
#   make fuzz            build, replay tests/fuzz/regressions/, then run each
#                        target for FUZZ_SECONDS (default 30) on a copy of its
#                        seed corpus; fails on the first crash, whose input
#                        is kept in build-fuzz/crashes/NAME/
#   make fuzz-regress    replay every seed and regression input through its
#                        target once (a few seconds; no new inputs)
#   make fuzz-build      only build
#   make build-fuzz/fuzz_NAME && build-fuzz/fuzz_NAME tests/fuzz/corpus/NAME

FUZZ_BUILD   ?= build-fuzz
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 30
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN     := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)

# Libraries get coverage instrumentation (fuzzer-no-link); only the targets
# link libFuzzer's main. UBSan findings abort so libFuzzer records them.
FUZZ_SAN     := -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=undefined
FUZZ_CFLAGS  := -std=gnu11 $(FUZZ_SAN) -fsanitize=fuzzer-no-link -Wall -Wextra -Werror -Wshadow \
	-Wno-unused-parameter -Icommon -Iqueue-proxy -Iactivator -I$(FUZZ_BUILD)/gen \
	-I$(LLHTTP_INC) $(PKG_CFLAGS)
FUZZ_CFLAGS_LLHTTP := -std=gnu11 $(FUZZ_SAN) -fsanitize=fuzzer-no-link -I$(LLHTTP_INC)
FUZZ_LDFLAGS := $(FUZZ_SAN) -fsanitize=fuzzer $(PKG_LIBS) -lm

FUZZ_COMMON_OBJ := $(COMMON_SRC:%.c=$(FUZZ_BUILD)/obj/%.o) $(FUZZ_BUILD)/obj/gen/stat.pb-c.o \
	$(FUZZ_BUILD)/obj/llhttp/llhttp.o $(FUZZ_BUILD)/obj/llhttp/api.o $(FUZZ_BUILD)/obj/llhttp/http.o
FUZZ_QP_OBJ  := $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(filter-out queue-proxy/main.c,$(wildcard queue-proxy/*.c)))
FUZZ_ACT_OBJ := $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(filter-out activator/main.c,$(wildcard activator/*.c)))
# Archives: each target pulls in only the modules it uses.
FUZZ_LIBS    := $(FUZZ_BUILD)/libactivator.a $(FUZZ_BUILD)/libqueueproxy.a $(FUZZ_BUILD)/libkp.a

.PHONY: fuzz fuzz-build fuzz-regress

$(FUZZ_BUILD)/gen/stat.pb-c.c $(FUZZ_BUILD)/gen/stat.pb-c.h &: common/stat.proto
	@mkdir -p $(FUZZ_BUILD)/gen
	protoc-c --proto_path=common --c_out=$(FUZZ_BUILD)/gen common/stat.proto

$(FUZZ_BUILD)/obj/gen/stat.pb-c.o: $(FUZZ_BUILD)/gen/stat.pb-c.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS_LLHTTP) $(PKG_CFLAGS) -c $< -o $@

$(FUZZ_BUILD)/obj/llhttp/%.o: $(LLHTTP_SRC)/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS_LLHTTP) -c $< -o $@

$(FUZZ_BUILD)/obj/%.o: %.c $(FUZZ_BUILD)/gen/stat.pb-c.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/libkp.a: $(FUZZ_COMMON_OBJ)
	rm -f $@; ar rcs $@ $^

$(FUZZ_BUILD)/libqueueproxy.a: $(FUZZ_QP_OBJ)
	rm -f $@; ar rcs $@ $^

$(FUZZ_BUILD)/libactivator.a: $(FUZZ_ACT_OBJ)
	rm -f $@; ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_%.o $(FUZZ_LIBS)
	$(FUZZ_CC) -o $@ $^ $(FUZZ_LDFLAGS)

fuzz-build: $(FUZZ_BIN)

# Replays seeds and regressions once each: a crash fixed stays fixed.
fuzz-regress: $(FUZZ_BIN)
	@set -e; for t in $(FUZZ_TARGETS); do \
	  files=$$(find tests/fuzz/corpus/$$t tests/fuzz/regressions/$$t -type f 2>/dev/null || true); \
	  [ -n "$$files" ] || continue; \
	  echo "== fuzz_$$t: $$(echo "$$files" | wc -l) inputs"; \
	  $(FUZZ_BUILD)/fuzz_$$t -runs=0 $$files >$(FUZZ_BUILD)/fuzz_$$t.regress.log 2>&1 || \
	    { tail -40 $(FUZZ_BUILD)/fuzz_$$t.regress.log; echo "fuzz_$$t: an input crashes it" >&2; exit 1; }; \
	done

# Each target mutates a scratch copy of its seeds (new finds go there, not
# into the repository). The exec counts come from -print_final_stats.
fuzz: fuzz-regress
	@set -e; for t in $(FUZZ_TARGETS); do \
	  work=$(FUZZ_BUILD)/corpus/$$t; crashes=$(FUZZ_BUILD)/crashes/$$t; \
	  mkdir -p $$work $$crashes; cp -n tests/fuzz/corpus/$$t/* $$work/ 2>/dev/null || true; \
	  echo "== fuzz_$$t for $(FUZZ_SECONDS) s"; \
	  if ! $(FUZZ_BUILD)/fuzz_$$t $$work -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
	      -artifact_prefix=$$crashes/ >$(FUZZ_BUILD)/fuzz_$$t.log 2>&1; then \
	    tail -60 $(FUZZ_BUILD)/fuzz_$$t.log; \
	    echo "fuzz_$$t crashed; input in $$crashes/" >&2; exit 1; fi; \
	  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|^#[0-9]+.*DONE' \
	    $(FUZZ_BUILD)/fuzz_$$t.log; \
	done

-include $(shell find $(FUZZ_BUILD)/obj -name '*.d' 2>/dev/null)
