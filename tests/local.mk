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
	OPENBLAS_NUM_THREADS=1; export OPENBLAS_NUM_THREADS;

TEST_CPPFLAGS = $(AM_CPPFLAGS) -DASEC_TEST_DATADIR=\"$(abs_top_srcdir)/datasets\" \
	-DASEC_TEST_SRCDIR=\"$(abs_top_srcdir)/tests\"
TEST_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
TEST_LIBS = src/libattnsec.la $(CHECK_LIBS) -lm

if HAVE_CHECK
ASEC_CHECK_PROGS = \
	%reldir%/check_core \
	%reldir%/check_rng \
	%reldir%/check_report
check_PROGRAMS += $(ASEC_CHECK_PROGS)

%canon_reldir%_check_core_SOURCES = %reldir%/check_core.c %reldir%/testutil.c %reldir%/testutil.h
%canon_reldir%_check_core_CPPFLAGS = $(TEST_CPPFLAGS)
%canon_reldir%_check_core_CFLAGS = $(TEST_CFLAGS)
%canon_reldir%_check_core_LDADD = $(TEST_LIBS)

%canon_reldir%_check_rng_SOURCES = %reldir%/check_rng.c %reldir%/testutil.c %reldir%/testutil.h
%canon_reldir%_check_rng_CPPFLAGS = $(TEST_CPPFLAGS)
%canon_reldir%_check_rng_CFLAGS = $(TEST_CFLAGS) $(SODIUM_CFLAGS) $(GSL_CFLAGS)
%canon_reldir%_check_rng_LDADD = $(TEST_LIBS) $(SODIUM_LIBS) $(GSL_LIBS)

%canon_reldir%_check_report_SOURCES = %reldir%/check_report.c %reldir%/testutil.c %reldir%/testutil.h
%canon_reldir%_check_report_CPPFLAGS = $(TEST_CPPFLAGS)
%canon_reldir%_check_report_CFLAGS = $(TEST_CFLAGS) $(SODIUM_CFLAGS) $(JANSSON_CFLAGS)
%canon_reldir%_check_report_LDADD = $(TEST_LIBS) $(SODIUM_LIBS) $(JANSSON_LIBS)

TESTS += $(ASEC_CHECK_PROGS)
else
TESTS += %reldir%/no-check.sh
endif

ASEC_SHELL_TESTS = \
	%reldir%/cli/help.sh \
	%reldir%/cli/usage-errors.sh \
	%reldir%/layering.sh \
	%reldir%/exports.sh \
	%reldir%/man-lint.sh
TESTS += $(ASEC_SHELL_TESTS)
EXTRA_DIST += $(ASEC_SHELL_TESTS) %reldir%/no-check.sh %reldir%/cli/common.sh
