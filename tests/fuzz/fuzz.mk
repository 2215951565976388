# libFuzzer targets (tests/fuzz/fuzz_*.c), built with clang under ASan and
# UBSan into build-fuzz/ by the Makefile's own rules (SANITIZE=fuzz).
# Included by the Makefile.
#
#   make fuzz            build, replay tests/fuzz/regressions/, then run each
#                        target for FUZZ_SECONDS (default 30) on a copy of its
#                        seed corpus; fails on the first crash, whose input
#                        is kept in build-fuzz/crashes/NAME/
#   make fuzz-regress    replay every seed and regression input through its
#                        target once (a few seconds; no new inputs)
#   make fuzz-build      only build
#   then: build-fuzz/fuzz_NAME tests/fuzz/corpus/NAME

FUZZ_BUILD   ?= build-fuzz
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 30
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))

.PHONY: fuzz fuzz-build fuzz-regress fuzz-bins

# Runs inside `make BUILD=$(FUZZ_BUILD) SANITIZE=fuzz CC=$(FUZZ_CC)`.
fuzz-bins: $(FUZZ_TARGETS:%=$(BUILD)/fuzz_%)

$(BUILD)/fuzz_%: $(BUILD)/obj/tests/fuzz/fuzz_%.o $(TEST_LIBS)
	$(CC) -o $@ $^ $(LDFLAGS_ALL) -fsanitize=fuzzer

fuzz-build:
	$(MAKE) BUILD=$(FUZZ_BUILD) SANITIZE=fuzz CC=$(FUZZ_CC) fuzz-bins

# Replays seeds and regressions once each: a crash fixed stays fixed.
fuzz-regress: fuzz-build
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
