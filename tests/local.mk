# tests/local.mk - make check: one Check program per module (TAP driver, one
# line per test case) plus shell tests of the CLI (exit-status driver).

TEST_EXTENSIONS = .sh
SH_LOG_COMPILER = $(SHELL)
LOG_DRIVER = env AM_TAP_AWK='$(AWK)' $(SHELL) $(top_srcdir)/build-aux/tap-driver.sh
AM_TESTS_ENVIRONMENT = \
	CK_TAP_LOG_FILE_NAME=- CK_VERBOSITY=silent; \
	export CK_TAP_LOG_FILE_NAME CK_VERBOSITY; \
	ATTNSEC='$(abs_top_builddir)/src/cli/attnsec'; export ATTNSEC; \
	ASEC_SRCDIR='$(abs_top_srcdir)'; export ASEC_SRCDIR; \
	ASEC_BUILDDIR='$(abs_top_builddir)'; export ASEC_BUILDDIR; \
	MANDOC='$(MANDOC)'; export MANDOC; \
	OPENBLAS_NUM_THREADS=1; export OPENBLAS_NUM_THREADS; \
	ASEC_LONG_TESTS='$(ASEC_LONG_TESTS)'; export ASEC_LONG_TESTS; \
	ASEC_VALGRIND='$(ASEC_VALGRIND)'; export ASEC_VALGRIND; \
	if test -n "$$ASEC_VALGRIND"; then ATTNSEC='$(abs_top_srcdir)/tests/attnsec-vg.sh'; fi;

TEST_CPPFLAGS = $(AM_CPPFLAGS) -DASEC_TEST_DATADIR=\"$(abs_top_srcdir)/datasets\" \
	-DASEC_TEST_SRCDIR=\"$(abs_top_srcdir)/tests\"
TEST_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
TEST_LIBS = src/libattnsec.la $(CHECK_LIBS) -lm

if HAVE_CHECK
ASEC_CHECK_PROGS = \
	%reldir%/check_core \
	%reldir%/check_rng \
	%reldir%/check_mat \
	%reldir%/check_report \
	%reldir%/check_attn \
	%reldir%/check_model \
	%reldir%/check_noise \
	%reldir%/check_attn_invert \
	%reldir%/check_dlg \
	%reldir%/check_image \
	%reldir%/check_copyright \
	%reldir%/check_io \
	%reldir%/check_acct \
	%reldir%/check_dp_attn \
	%reldir%/check_dpsgd
check_PROGRAMS += $(ASEC_CHECK_PROGS)

# check_acct compares the accountant with an MPFR evaluation when configure
# found MPFR (HAVE_MPFR, MPFR_CFLAGS, MPFR_LIBS); without it those
# comparisons are skipped with a notice.
%canon_reldir%_check_acct_SOURCES = %reldir%/check_acct.c %reldir%/testutil.c %reldir%/testutil.h
%canon_reldir%_check_acct_CPPFLAGS = $(TEST_CPPFLAGS)
%canon_reldir%_check_acct_CFLAGS = $(TEST_CFLAGS) $(MPFR_CFLAGS)
%canon_reldir%_check_acct_LDADD = $(TEST_LIBS) $(MPFR_LIBS)

%canon_reldir%_check_dp_attn_SOURCES = %reldir%/check_dp_attn.c %reldir%/testutil.c %reldir%/testutil.h
%canon_reldir%_check_dp_attn_CPPFLAGS = $(TEST_CPPFLAGS)
%canon_reldir%_check_dp_attn_CFLAGS = $(TEST_CFLAGS)
%canon_reldir%_check_dp_attn_LDADD = $(TEST_LIBS)

%canon_reldir%_check_dpsgd_SOURCES = %reldir%/check_dpsgd.c %reldir%/testutil.c %reldir%/testutil.h
%canon_reldir%_check_dpsgd_CPPFLAGS = $(TEST_CPPFLAGS)
%canon_reldir%_check_dpsgd_CFLAGS = $(TEST_CFLAGS)
%canon_reldir%_check_dpsgd_LDADD = $(TEST_LIBS)

%canon_reldir%_check_io_SOURCES = %reldir%/check_io.c %reldir%/testutil.c %reldir%/testutil.h
%canon_reldir%_check_io_CPPFLAGS = $(TEST_CPPFLAGS)
%canon_reldir%_check_io_CFLAGS = $(TEST_CFLAGS)
%canon_reldir%_check_io_LDADD = $(TEST_LIBS)

%canon_reldir%_check_core_SOURCES = %reldir%/check_core.c %reldir%/testutil.c %reldir%/testutil.h
%canon_reldir%_check_core_CPPFLAGS = $(TEST_CPPFLAGS)
%canon_reldir%_check_core_CFLAGS = $(TEST_CFLAGS)
%canon_reldir%_check_core_LDADD = $(TEST_LIBS)

%canon_reldir%_check_dlg_SOURCES = %reldir%/check_dlg.c %reldir%/testutil.c %reldir%/testutil.h
%canon_reldir%_check_dlg_CPPFLAGS = $(TEST_CPPFLAGS)
%canon_reldir%_check_dlg_CFLAGS = $(TEST_CFLAGS)
%canon_reldir%_check_dlg_LDADD = $(TEST_LIBS)

%canon_reldir%_check_image_SOURCES = %reldir%/check_image.c %reldir%/testutil.c %reldir%/testutil.h
%canon_reldir%_check_image_CPPFLAGS = $(TEST_CPPFLAGS)
%canon_reldir%_check_image_CFLAGS = $(TEST_CFLAGS) $(PNG_CFLAGS)
%canon_reldir%_check_image_LDADD = $(TEST_LIBS) $(PNG_LIBS)

%canon_reldir%_check_copyright_SOURCES = %reldir%/check_copyright.c %reldir%/testutil.c %reldir%/testutil.h
%canon_reldir%_check_copyright_CPPFLAGS = $(TEST_CPPFLAGS)
%canon_reldir%_check_copyright_CFLAGS = $(TEST_CFLAGS)
%canon_reldir%_check_copyright_LDADD = $(TEST_LIBS)

%canon_reldir%_check_rng_SOURCES = %reldir%/check_rng.c %reldir%/testutil.c %reldir%/testutil.h
%canon_reldir%_check_rng_CPPFLAGS = $(TEST_CPPFLAGS)
%canon_reldir%_check_rng_CFLAGS = $(TEST_CFLAGS) $(SODIUM_CFLAGS) $(GSL_CFLAGS)
%canon_reldir%_check_rng_LDADD = $(TEST_LIBS) $(SODIUM_LIBS) $(GSL_LIBS)

%canon_reldir%_check_mat_SOURCES = %reldir%/check_mat.c %reldir%/testutil.c %reldir%/testutil.h
%canon_reldir%_check_mat_CPPFLAGS = $(TEST_CPPFLAGS)
%canon_reldir%_check_mat_CFLAGS = $(TEST_CFLAGS)
%canon_reldir%_check_mat_LDADD = $(TEST_LIBS)

%canon_reldir%_check_report_SOURCES = %reldir%/check_report.c %reldir%/testutil.c %reldir%/testutil.h
%canon_reldir%_check_report_CPPFLAGS = $(TEST_CPPFLAGS)
%canon_reldir%_check_report_CFLAGS = $(TEST_CFLAGS) $(SODIUM_CFLAGS) $(JANSSON_CFLAGS)
%canon_reldir%_check_report_LDADD = $(TEST_LIBS) $(SODIUM_LIBS) $(JANSSON_LIBS)

%canon_reldir%_check_attn_SOURCES = %reldir%/check_attn.c %reldir%/testutil.c %reldir%/testutil.h
%canon_reldir%_check_attn_CPPFLAGS = $(TEST_CPPFLAGS)
%canon_reldir%_check_attn_CFLAGS = $(TEST_CFLAGS)
%canon_reldir%_check_attn_LDADD = $(TEST_LIBS)

%canon_reldir%_check_model_SOURCES = %reldir%/check_model.c %reldir%/testutil.c %reldir%/testutil.h
%canon_reldir%_check_model_CPPFLAGS = $(TEST_CPPFLAGS)
%canon_reldir%_check_model_CFLAGS = $(TEST_CFLAGS)
%canon_reldir%_check_model_LDADD = $(TEST_LIBS)

%canon_reldir%_check_noise_SOURCES = %reldir%/check_noise.c %reldir%/testutil.c %reldir%/testutil.h
%canon_reldir%_check_noise_CPPFLAGS = $(TEST_CPPFLAGS)
%canon_reldir%_check_noise_CFLAGS = $(TEST_CFLAGS) $(GSL_CFLAGS)
%canon_reldir%_check_noise_LDADD = $(TEST_LIBS) $(GSL_LIBS)

%canon_reldir%_check_attn_invert_SOURCES = %reldir%/check_attn_invert.c %reldir%/testutil.c %reldir%/testutil.h
%canon_reldir%_check_attn_invert_CPPFLAGS = $(TEST_CPPFLAGS)
%canon_reldir%_check_attn_invert_CFLAGS = $(TEST_CFLAGS)
%canon_reldir%_check_attn_invert_LDADD = $(TEST_LIBS)

TESTS += $(ASEC_CHECK_PROGS)
else
TESTS += %reldir%/no-check.sh
endif

ASEC_SHELL_TESTS = \
	%reldir%/cli/help.sh \
	%reldir%/cli/usage-errors.sh \
	%reldir%/layering.sh \
	%reldir%/exports.sh \
	%reldir%/man-lint.sh \
	%reldir%/cli/attack.sh \
	%reldir%/cli/dlg.sh \
	%reldir%/cli/defend.sh \
	%reldir%/cli/dpsgd.sh \
	%reldir%/cli/dp_attn.sh \
	%reldir%/cli/inspect.sh \
	%reldir%/cli/release.sh \
	%reldir%/cli/model.sh \
	%reldir%/cli/account.sh \
	%reldir%/cli/batch-hardening.sh
TESTS += $(ASEC_SHELL_TESTS)
EXTRA_DIST += $(ASEC_SHELL_TESTS) %reldir%/no-check.sh %reldir%/cli/common.sh
include %reldir%/malformed/local.mk
include %reldir%/fuzz/local.mk
include %reldir%/batch/local.mk

# make check-long: the same suite with the long statistical tests enabled
# (N = 1e8 samples, secure randomness, 1e4 random property checks).  Not run
# in CI.
check-long:
	$(MAKE) $(AM_MAKEFLAGS) check ASEC_LONG_TESTS=1 CK_TIMEOUT_MULTIPLIER=100

# make check-valgrind: the unit tests, the fuzz replays and the CLI tests
# under memcheck: zero errors and zero bytes definitely, indirectly or
# possibly lost (tests/valgrind-wrap.sh; third-party suppressions in
# tests/valgrind.supp).  CK_FORK=no so Check's fork mode hides nothing;
# OPENBLAS_CORETYPE=Sandybridge because valgrind does not emulate AVX-512
# and runs the FMA kernels of Haswell about 6x slower than the AVX ones.  Every
# process writes valgrind-logs/vg.PID.log; a non-empty log fails the target
# even when a test ignored the status of the command that leaked.
ASEC_VALGRIND_TESTS = $(ASEC_CHECK_PROGS) $(ASEC_SHELL_TESTS) %reldir%/fuzz/replay.sh
check-valgrind:
	rm -rf valgrind-logs
	$(MAKE) $(AM_MAKEFLAGS) check TESTS='$(ASEC_VALGRIND_TESTS)' CK_FORK=no \
		OPENBLAS_CORETYPE=Sandybridge ASEC_VALGRIND=1 \
		LOG_COMPILER='$(abs_top_srcdir)/tests/valgrind-wrap.sh'
	@n=`ls valgrind-logs | wc -l`; bad=`find valgrind-logs -name 'vg.*.log' -size +0 | wc -l`; \
	echo "check-valgrind: $$n processes under memcheck, $$bad with errors or leaks"; \
	if test "$$bad" -ne 0; then \
	  find valgrind-logs -name 'vg.*.log' -size +0 -exec sh -c 'echo "== $$1"; head -n 40 "$$1"' sh {} \; ; \
	  exit 1; fi
clean-local: clean-valgrind
clean-valgrind:
	-rm -rf valgrind-logs
EXTRA_DIST += %reldir%/valgrind-wrap.sh %reldir%/attnsec-vg.sh %reldir%/valgrind.supp

.PHONY: check-long check-valgrind clean-valgrind
