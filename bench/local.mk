# bench/local.mk - 'make bench' builds and runs every benchmark, each of which
# prints its figures and their ratios to the anchors measured in the same run.
# Not part of make check: tests never assert on wall time.
BENCH_PROGS =
BENCH_LIBS = src/libattnsec.la -lm

EXTRA_PROGRAMS += %reldir%/bench_mat
BENCH_PROGS += %reldir%/bench_mat
%canon_reldir%_bench_mat_SOURCES = %reldir%/bench_mat.c
%canon_reldir%_bench_mat_LDADD = $(BENCH_LIBS)
CLEANFILES += %reldir%/bench_mat$(EXEEXT)

EXTRA_PROGRAMS += %reldir%/bench_noise
BENCH_PROGS += %reldir%/bench_noise
%canon_reldir%_bench_noise_SOURCES = %reldir%/bench_noise.c
%canon_reldir%_bench_noise_LDADD = $(BENCH_LIBS)
CLEANFILES += %reldir%/bench_noise$(EXEEXT)

EXTRA_PROGRAMS += %reldir%/bench_attn_invert
BENCH_PROGS += %reldir%/bench_attn_invert
%canon_reldir%_bench_attn_invert_SOURCES = %reldir%/bench_attn_invert.c
%canon_reldir%_bench_attn_invert_LDADD = $(BENCH_LIBS)
CLEANFILES += %reldir%/bench_attn_invert$(EXEEXT)

EXTRA_PROGRAMS += %reldir%/bench_engine
BENCH_PROGS += %reldir%/bench_engine
%canon_reldir%_bench_engine_SOURCES = %reldir%/bench_engine.c
%canon_reldir%_bench_engine_CPPFLAGS = $(AM_CPPFLAGS) -DASEC_SRCDIR=\"$(abs_top_srcdir)\"
%canon_reldir%_bench_engine_LDADD = $(BENCH_LIBS)
CLEANFILES += %reldir%/bench_engine$(EXEEXT)
EXTRA_DIST += %reldir%/torch_engine.py

EXTRA_PROGRAMS += %reldir%/bench_dpsgd
BENCH_PROGS += %reldir%/bench_dpsgd
%canon_reldir%_bench_dpsgd_SOURCES = %reldir%/bench_dpsgd.c
%canon_reldir%_bench_dpsgd_CPPFLAGS = $(AM_CPPFLAGS) -DASEC_SRCDIR=\"$(abs_top_srcdir)\"
%canon_reldir%_bench_dpsgd_LDADD = $(BENCH_LIBS)
CLEANFILES += %reldir%/bench_dpsgd$(EXEEXT)

bench: $(BENCH_PROGS)
	@for b in $(BENCH_PROGS); do echo "== $$b"; OPENBLAS_NUM_THREADS=1 ./$$b || exit 1; done
.PHONY: bench

EXTRA_PROGRAMS += %reldir%/bench_dlg
BENCH_PROGS += %reldir%/bench_dlg
%canon_reldir%_bench_dlg_SOURCES = %reldir%/bench_dlg.c
%canon_reldir%_bench_dlg_LDADD = $(BENCH_LIBS)
CLEANFILES += %reldir%/bench_dlg$(EXEEXT)

EXTRA_PROGRAMS += %reldir%/bench_acct
BENCH_PROGS += %reldir%/bench_acct
%canon_reldir%_bench_acct_SOURCES = %reldir%/bench_acct.c
%canon_reldir%_bench_acct_LDADD = $(BENCH_LIBS)
CLEANFILES += %reldir%/bench_acct$(EXEEXT)

# Measurement scripts (not speed benchmarks; run by hand, quoted in the man
# pages they name).
EXTRA_DIST += %reldir%/dlg_trained_vit.sh
