# tests/fuzz/local.mk - fuzz harnesses (issue #12; RELIABILITY.md section 6).
# Included from tests/local.mk.
#
# Each harness tests/fuzz/fuzz_X.c is built twice:
#   tests/fuzz/replay_X  with replay.c's main(), always; 'make check' runs it
#                        (tests/fuzz/replay.sh) over the committed seed corpus
#                        and the malformed corpus: fast and deterministic;
#   tests/fuzz/fuzz_X    with libFuzzer, only under --enable-fuzzing (clang);
#                        'make fuzz' runs each for FUZZ_SECONDS.

FUZZ_HARNESSES = fuzz_npy fuzz_safetensors fuzz_json fuzz_cli_numbers fuzz_npy_roundtrip \
	fuzz_cli_schedule fuzz_data fuzz_batch fuzz_campaign fuzz_checkpoint fuzz_records

FUZZ_COMMON = %reldir%/fuzz.h %reldir%/fuzz_common.c
FUZZ_IO = %reldir%/fuzz_io.h %reldir%/fuzz_io.c
FUZZ_LIBS = src/libattnsec.la -lm
# The CLI parsers of src/cli/cli.c, linked into the harnesses that test them.
FUZZ_CLI = src/cli/cli.c src/cli/cli.h src/printable.c src/printable.h
FUZZ_BATCH = src/cli/batch_plan.c src/cli/batch_plan.h src/cli/slurp.c src/cli/slurp.h \
	$(FUZZ_CLI)
# The readers of files the program wrote (ledger, batch results, curve.csv).
FUZZ_RECORDS = src/cli/ledger.c src/cli/ledger.h src/cli/batch_result.c \
	src/cli/batch_result.h src/cli/curve.c src/cli/curve.h $(FUZZ_BATCH)

ASEC_REPLAY_PROGS = \
	%reldir%/replay_npy \
	%reldir%/replay_safetensors \
	%reldir%/replay_json \
	%reldir%/replay_cli_numbers \
	%reldir%/replay_npy_roundtrip \
	%reldir%/replay_cli_schedule \
	%reldir%/replay_data \
	%reldir%/replay_batch \
	%reldir%/replay_checkpoint \
	%reldir%/replay_campaign \
	%reldir%/replay_records
check_PROGRAMS += $(ASEC_REPLAY_PROGS)

%canon_reldir%_replay_npy_SOURCES = %reldir%/fuzz_npy.c $(FUZZ_IO) $(FUZZ_COMMON) \
	%reldir%/replay.c
%canon_reldir%_replay_npy_LDADD = $(FUZZ_LIBS)
%canon_reldir%_replay_safetensors_SOURCES = %reldir%/fuzz_safetensors.c $(FUZZ_IO) \
	$(FUZZ_COMMON) %reldir%/replay.c
%canon_reldir%_replay_safetensors_LDADD = $(FUZZ_LIBS)
%canon_reldir%_replay_json_SOURCES = %reldir%/fuzz_json.c $(FUZZ_COMMON) %reldir%/replay.c
%canon_reldir%_replay_json_LDADD = $(FUZZ_LIBS)
%canon_reldir%_replay_cli_numbers_SOURCES = %reldir%/fuzz_cli_numbers.c $(FUZZ_CLI) \
	$(FUZZ_COMMON) %reldir%/replay.c
%canon_reldir%_replay_cli_numbers_CFLAGS = $(AM_CFLAGS) $(DEPS_CFLAGS)
%canon_reldir%_replay_cli_numbers_LDADD = $(FUZZ_LIBS) $(DEPS_LIBS)
%canon_reldir%_replay_npy_roundtrip_SOURCES = %reldir%/fuzz_npy_roundtrip.c \
	$(FUZZ_COMMON) %reldir%/replay.c
%canon_reldir%_replay_npy_roundtrip_LDADD = $(FUZZ_LIBS)
%canon_reldir%_replay_cli_schedule_SOURCES = %reldir%/fuzz_cli_schedule.c $(FUZZ_CLI) \
	$(FUZZ_COMMON) %reldir%/replay.c
%canon_reldir%_replay_cli_schedule_CFLAGS = $(AM_CFLAGS) $(DEPS_CFLAGS)
%canon_reldir%_replay_cli_schedule_LDADD = $(FUZZ_LIBS) $(DEPS_LIBS)
%canon_reldir%_replay_data_SOURCES = %reldir%/fuzz_data.c $(FUZZ_COMMON) %reldir%/replay.c
%canon_reldir%_replay_data_LDADD = $(FUZZ_LIBS)
%canon_reldir%_replay_batch_SOURCES = %reldir%/fuzz_batch.c $(FUZZ_BATCH) $(FUZZ_COMMON) \
	%reldir%/replay.c
%canon_reldir%_replay_batch_CFLAGS = $(AM_CFLAGS) $(DEPS_CFLAGS)
%canon_reldir%_replay_batch_LDADD = $(FUZZ_LIBS) $(DEPS_LIBS)
%canon_reldir%_replay_checkpoint_SOURCES = %reldir%/fuzz_checkpoint.c $(FUZZ_COMMON) \
	%reldir%/replay.c
%canon_reldir%_replay_checkpoint_LDADD = $(FUZZ_LIBS)
%canon_reldir%_replay_campaign_SOURCES = %reldir%/fuzz_campaign.c $(FUZZ_BATCH) \
	$(FUZZ_COMMON) %reldir%/replay.c
%canon_reldir%_replay_campaign_CFLAGS = $(AM_CFLAGS) $(DEPS_CFLAGS)
%canon_reldir%_replay_campaign_LDADD = $(FUZZ_LIBS) $(DEPS_LIBS)
%canon_reldir%_replay_records_SOURCES = %reldir%/fuzz_records.c $(FUZZ_RECORDS) \
	$(FUZZ_COMMON) %reldir%/replay.c
%canon_reldir%_replay_records_CFLAGS = $(AM_CFLAGS) $(DEPS_CFLAGS)
%canon_reldir%_replay_records_LDADD = $(FUZZ_LIBS) $(DEPS_LIBS)

TESTS += %reldir%/replay.sh
EXTRA_DIST += \
	%reldir%/replay.sh \
	%reldir%/npy.dict \
	%reldir%/safetensors.dict \
	%reldir%/json.dict \
	%reldir%/cli_numbers.dict \
	%reldir%/cli_schedule.dict \
	%reldir%/data.dict \
	%reldir%/batch.dict \
	%reldir%/checkpoint.dict \
	%reldir%/records.dict \
	%reldir%/update-corpus-list.sh
include %reldir%/corpus.mk

if ENABLE_FUZZING
FUZZ_PROGS = \
	%reldir%/fuzz_npy \
	%reldir%/fuzz_safetensors \
	%reldir%/fuzz_json \
	%reldir%/fuzz_cli_numbers \
	%reldir%/fuzz_npy_roundtrip \
	%reldir%/fuzz_cli_schedule \
	%reldir%/fuzz_data \
	%reldir%/fuzz_batch \
	%reldir%/fuzz_checkpoint \
	%reldir%/fuzz_campaign \
	%reldir%/fuzz_records
noinst_PROGRAMS += $(FUZZ_PROGS)
FUZZ_LINK = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)

%canon_reldir%_fuzz_npy_SOURCES = %reldir%/fuzz_npy.c $(FUZZ_IO) $(FUZZ_COMMON)
%canon_reldir%_fuzz_npy_LDFLAGS = $(FUZZ_LINK)
%canon_reldir%_fuzz_npy_LDADD = $(FUZZ_LIBS)
%canon_reldir%_fuzz_safetensors_SOURCES = %reldir%/fuzz_safetensors.c $(FUZZ_IO) \
	$(FUZZ_COMMON)
%canon_reldir%_fuzz_safetensors_LDFLAGS = $(FUZZ_LINK)
%canon_reldir%_fuzz_safetensors_LDADD = $(FUZZ_LIBS)
%canon_reldir%_fuzz_json_SOURCES = %reldir%/fuzz_json.c $(FUZZ_COMMON)
%canon_reldir%_fuzz_json_LDFLAGS = $(FUZZ_LINK)
%canon_reldir%_fuzz_json_LDADD = $(FUZZ_LIBS)
%canon_reldir%_fuzz_cli_numbers_SOURCES = %reldir%/fuzz_cli_numbers.c $(FUZZ_CLI) \
	$(FUZZ_COMMON)
%canon_reldir%_fuzz_cli_numbers_CFLAGS = $(AM_CFLAGS) $(DEPS_CFLAGS)
%canon_reldir%_fuzz_cli_numbers_LDFLAGS = $(FUZZ_LINK)
%canon_reldir%_fuzz_cli_numbers_LDADD = $(FUZZ_LIBS) $(DEPS_LIBS)
%canon_reldir%_fuzz_npy_roundtrip_SOURCES = %reldir%/fuzz_npy_roundtrip.c $(FUZZ_COMMON)
%canon_reldir%_fuzz_npy_roundtrip_LDFLAGS = $(FUZZ_LINK)
%canon_reldir%_fuzz_npy_roundtrip_LDADD = $(FUZZ_LIBS)
%canon_reldir%_fuzz_cli_schedule_SOURCES = %reldir%/fuzz_cli_schedule.c $(FUZZ_CLI) \
	$(FUZZ_COMMON)
%canon_reldir%_fuzz_cli_schedule_CFLAGS = $(AM_CFLAGS) $(DEPS_CFLAGS)
%canon_reldir%_fuzz_cli_schedule_LDFLAGS = $(FUZZ_LINK)
%canon_reldir%_fuzz_cli_schedule_LDADD = $(FUZZ_LIBS) $(DEPS_LIBS)
%canon_reldir%_fuzz_data_SOURCES = %reldir%/fuzz_data.c $(FUZZ_COMMON)
%canon_reldir%_fuzz_data_LDFLAGS = $(FUZZ_LINK)
%canon_reldir%_fuzz_data_LDADD = $(FUZZ_LIBS)
%canon_reldir%_fuzz_batch_SOURCES = %reldir%/fuzz_batch.c $(FUZZ_BATCH) $(FUZZ_COMMON)
%canon_reldir%_fuzz_batch_CFLAGS = $(AM_CFLAGS) $(DEPS_CFLAGS)
%canon_reldir%_fuzz_batch_LDFLAGS = $(FUZZ_LINK)
%canon_reldir%_fuzz_batch_LDADD = $(FUZZ_LIBS) $(DEPS_LIBS)
%canon_reldir%_fuzz_checkpoint_SOURCES = %reldir%/fuzz_checkpoint.c $(FUZZ_COMMON)
%canon_reldir%_fuzz_checkpoint_LDFLAGS = $(FUZZ_LINK)
%canon_reldir%_fuzz_checkpoint_LDADD = $(FUZZ_LIBS)
%canon_reldir%_fuzz_campaign_SOURCES = %reldir%/fuzz_campaign.c $(FUZZ_BATCH) $(FUZZ_COMMON)
%canon_reldir%_fuzz_campaign_CFLAGS = $(AM_CFLAGS) $(DEPS_CFLAGS)
%canon_reldir%_fuzz_campaign_LDFLAGS = $(FUZZ_LINK)
%canon_reldir%_fuzz_campaign_LDADD = $(FUZZ_LIBS) $(DEPS_LIBS)
%canon_reldir%_fuzz_records_SOURCES = %reldir%/fuzz_records.c $(FUZZ_RECORDS) $(FUZZ_COMMON)
%canon_reldir%_fuzz_records_CFLAGS = $(AM_CFLAGS) $(DEPS_CFLAGS)
%canon_reldir%_fuzz_records_LDFLAGS = $(FUZZ_LINK)
%canon_reldir%_fuzz_records_LDADD = $(FUZZ_LIBS) $(DEPS_LIBS)

# make fuzz [FUZZ_SECONDS=60] [FUZZ_HARNESSES='fuzz_npy ...'] [FUZZ_EXTRA=-runs=N]
# Runs each harness in turn (one process: the cores are shared) from a working
# corpus in the build tree, fuzz-corpus/NAME, seeded from the committed corpus
# and the fixtures.  A crash, leak, timeout (> 1 s), RSS over 2 GiB or single
# allocation over 256 MiB stops it; the input is saved as
# fuzz-artifacts/NAME-crash-SHA1.  Minimize the committed corpus with
# 'fuzz_X -merge=1 NEWDIR OLDDIR...' and then run update-corpus-list.sh.
FUZZ_SECONDS = 60
FUZZ_FLAGS = -timeout=1 -rss_limit_mb=2048 -malloc_limit_mb=256 -max_len=1048576 \
	-print_final_stats=1
FUZZ_EXTRA =
FUZZ_ENV = OPENBLAS_NUM_THREADS=1 \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fuzz_seeds_fuzz_npy = $(srcdir)/datasets/fixtures/npy $(srcdir)/tests/malformed
fuzz_seeds_fuzz_safetensors = $(srcdir)/datasets/fixtures/safetensors \
	$(srcdir)/datasets/fixtures/engine $(srcdir)/tests/malformed
fuzz_seeds_fuzz_json = $(srcdir)/datasets/fixtures/acct
fuzz_dict_fuzz_npy = -dict=$(srcdir)/%reldir%/npy.dict
fuzz_dict_fuzz_safetensors = -dict=$(srcdir)/%reldir%/safetensors.dict
fuzz_dict_fuzz_json = -dict=$(srcdir)/%reldir%/json.dict
fuzz_dict_fuzz_cli_numbers = -dict=$(srcdir)/%reldir%/cli_numbers.dict
fuzz_dict_fuzz_cli_schedule = -dict=$(srcdir)/%reldir%/cli_schedule.dict
fuzz_dict_fuzz_data = -dict=$(srcdir)/%reldir%/data.dict
fuzz_seeds_fuzz_batch = $(srcdir)/tests/batch
fuzz_dict_fuzz_batch = -dict=$(srcdir)/%reldir%/batch.dict
fuzz_dict_fuzz_checkpoint = -dict=$(srcdir)/%reldir%/checkpoint.dict
fuzz_dict_fuzz_records = -dict=$(srcdir)/%reldir%/records.dict

fuzz: $(FUZZ_PROGS)
	@set -e; for h in $(FUZZ_HARNESSES); do \
	  case $$h in \
	    fuzz_npy) seeds='$(fuzz_seeds_fuzz_npy)'; dict='$(fuzz_dict_fuzz_npy)';; \
	    fuzz_safetensors) seeds='$(fuzz_seeds_fuzz_safetensors)'; \
	      dict='$(fuzz_dict_fuzz_safetensors)';; \
	    fuzz_json) seeds='$(fuzz_seeds_fuzz_json)'; dict='$(fuzz_dict_fuzz_json)';; \
	    fuzz_cli_numbers) seeds=; dict='$(fuzz_dict_fuzz_cli_numbers)';; \
	    fuzz_cli_schedule) seeds=; dict='$(fuzz_dict_fuzz_cli_schedule)';; \
	    fuzz_data) seeds=; dict='$(fuzz_dict_fuzz_data)';; \
	    fuzz_batch) seeds='$(fuzz_seeds_fuzz_batch)'; dict='$(fuzz_dict_fuzz_batch)';; \
	    fuzz_checkpoint) seeds=; dict='$(fuzz_dict_fuzz_checkpoint)';; \
	    fuzz_campaign) seeds=; dict='$(fuzz_dict_fuzz_batch)';; \
	    fuzz_records) seeds=; dict='$(fuzz_dict_fuzz_records)';; \
	    *) seeds=; dict=;; \
	  esac; \
	  $(MKDIR_P) fuzz-corpus/$$h fuzz-artifacts; \
	  echo "fuzz: $$h for $(FUZZ_SECONDS) s"; \
	  $(FUZZ_ENV) ./%reldir%/$$h $(FUZZ_FLAGS) $$dict -max_total_time=$(FUZZ_SECONDS) \
	    -artifact_prefix=fuzz-artifacts/$$h- $(FUZZ_EXTRA) \
	    fuzz-corpus/$$h $(srcdir)/%reldir%/corpus/$$h $$seeds; \
	done
else
fuzz:
	@echo "make fuzz: configure with --enable-fuzzing CC=clang first" >&2; exit 1
endif

clean-local: clean-fuzz
clean-fuzz:
	-rm -rf fuzz-corpus fuzz-artifacts

.PHONY: fuzz clean-fuzz
