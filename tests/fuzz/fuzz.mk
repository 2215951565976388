# libFuzzer targets (tests/fuzz/fuzz_*.c), built with clang under ASan and
# UBSan into build-fuzz/ by the Makefile's own rules (SANITIZE=fuzz).
# Included by the Makefile.
#
#   make fuzz            build, replay tests/fuzz/regressions/, then run each
#                        target for FUZZ_SECONDS (default 30) on a copy of its
#                        seed corpus; fails on the first crash, whose input
#                        is kept in build-fuzz/crashes/NAME/
#   make fuzz-long       the same, but each target runs until it has executed
#                        FUZZ_RUNS inputs (default 10^7, libFuzzer -runs), one
#                        target after the other; prints each target's count,
#                        speed and time, and collects them in
#                        build-fuzz/fuzz-long.txt. On two shared cores this
#                        takes hours for all targets: FUZZ_ONLY picks some.
#   make fuzz-regress    replay every seed and regression input through its
#                        target once (a few seconds; no new inputs)
#   make fuzz-build      only build
#   FUZZ_ONLY="upstream kube_objects" limits fuzz and fuzz-long to those.
#   then: build-fuzz/fuzz_NAME tests/fuzz/corpus/NAME
#
# Targets: every tests/fuzz/fuzz_NAME.c, seeds in tests/fuzz/corpus/NAME/.
# fuzz_h2_server puts the HTTP/2 client preface before each input, so its
# seeds (and finds) are frames: SETTINGS first, then HEADERS, DATA...
#
# A target's dictionary, tests/fuzz/dict/NAME.dict, is passed when present.
# A crash becomes a regression input: fix the bug (a failing unit or e2e
# test first), then copy the input to tests/fuzz/regressions/NAME/.

FUZZ_BUILD   ?= build-fuzz
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 30
FUZZ_RUNS    ?= 10000000
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_ONLY    ?= $(FUZZ_TARGETS)

.PHONY: fuzz fuzz-long fuzz-build fuzz-regress fuzz-bins

# Runs inside `make BUILD=$(FUZZ_BUILD) SANITIZE=fuzz CC=$(FUZZ_CC)`.
fuzz-bins: $(FUZZ_TARGETS:%=$(BUILD)/fuzz_%)

$(BUILD)/fuzz_%: $(BUILD)/obj/tests/fuzz/fuzz_%.o $(TEST_LIBS)
	$(CC) -o $@ $^ $(LDFLAGS_ALL) -fsanitize=fuzzer

# clang comes with the test tools.
fuzz-build: deps-test
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
# $(1): what bounds the run (libFuzzer flags), $(2): how it is described.
define fuzz_run
	@set -e; for t in $(FUZZ_ONLY); do \
	  work=$(FUZZ_BUILD)/corpus/$$t; crashes=$(FUZZ_BUILD)/crashes/$$t; log=$(FUZZ_BUILD)/fuzz_$$t.log; \
	  mkdir -p $$work $$crashes; cp -n tests/fuzz/corpus/$$t/* $$work/ 2>/dev/null || true; \
	  dict=; [ -f tests/fuzz/dict/$$t.dict ] && dict=-dict=tests/fuzz/dict/$$t.dict; \
	  echo "== fuzz_$$t for $(2)"; start=$$(date +%s); \
	  if ! $(FUZZ_BUILD)/fuzz_$$t $$work $(1) $$dict -timeout=10 -print_final_stats=1 \
	      -artifact_prefix=$$crashes/ >$$log 2>&1; then \
	    tail -60 $$log; \
	    echo "fuzz_$$t crashed; input in $$crashes/ (replay: $(FUZZ_BUILD)/fuzz_$$t FILE)" >&2; exit 1; fi; \
	  secs=$$(( $$(date +%s) - start )); \
	  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|^#[0-9]+.*DONE' $$log; \
	  echo "fuzz_$$t: $$(sed -n 's/^stat::number_of_executed_units: *//p' $$log) runs in $$secs s" \
	    "($$(sed -n 's/^stat::average_exec_per_sec: *//p' $$log)/s, peak RSS" \
	    "$$(sed -n 's/^stat::peak_rss_mb: *//p' $$log) MB)" | tee -a $(FUZZ_BUILD)/$(3); \
	done
endef

fuzz: fuzz-regress
	$(call fuzz_run,-max_total_time=$(FUZZ_SECONDS),$(FUZZ_SECONDS) s,fuzz.txt)

fuzz-long: fuzz-regress
	$(call fuzz_run,-runs=$(FUZZ_RUNS),$(FUZZ_RUNS) runs,fuzz-long.txt)
