# src/local.mk - the core library libattnsec and the attnsec program.

lib_LTLIBRARIES += %reldir%/libattnsec.la
%canon_reldir%_libattnsec_la_SOURCES = \
	%reldir%/internal.h \
	%reldir%/core.c \
	%reldir%/error.c \
	%reldir%/printable.h \
	%reldir%/printable.c \
	%reldir%/rng.c \
	%reldir%/mat.c \
	%reldir%/vec.c \
	%reldir%/attn.c \
	%reldir%/model.c \
	%reldir%/model_io.c \
	%reldir%/model_internal.h \
	%reldir%/data.c \
	%reldir%/image.c \
	%reldir%/afile.c \
	%reldir%/report.c \
	%reldir%/noise.c \
	%reldir%/io_internal.h \
	%reldir%/io.c \
	%reldir%/npy.c \
	%reldir%/safetensors.c \
	%reldir%/acct_internal.h \
	%reldir%/acct.c \
	%reldir%/acct_rdp.c \
	%reldir%/acct_pld.c \
	%reldir%/acct_closed.c
%canon_reldir%_libattnsec_la_CFLAGS = $(AM_CFLAGS) $(VISIBILITY_CFLAGS) $(DEPS_CFLAGS)
%canon_reldir%_libattnsec_la_LIBADD = $(ATTNSEC_MODULE_LIBS) $(DEPS_LIBS)
%canon_reldir%_libattnsec_la_LDFLAGS = $(AM_LDFLAGS) -no-undefined \
	-version-info $(ASEC_LT_VERSION) -export-symbols-regex '^asec_'

pkginclude_HEADERS += \
	%reldir%/attnsec/attnsec.h \
	%reldir%/attnsec/common.h \
	%reldir%/attnsec/mat.h \
	%reldir%/attnsec/vec.h \
	%reldir%/attnsec/attn.h \
	%reldir%/attnsec/model.h \
	%reldir%/attnsec/dlg.h \
	%reldir%/attnsec/data.h \
	%reldir%/attnsec/image.h \
	%reldir%/attnsec/rng.h \
	%reldir%/attnsec/afile.h \
	%reldir%/attnsec/report.h \
	%reldir%/attnsec/noise.h \
	%reldir%/attnsec/io.h \
	%reldir%/attnsec/copyright.h \
	%reldir%/attnsec/attn_invert.h \
	%reldir%/attnsec/acct.h \
	%reldir%/attnsec/dp_attn.h \
	%reldir%/attnsec/dpsgd.h
nodist_pkginclude_HEADERS += %reldir%/attnsec/version.h
EXTRA_DIST += %reldir%/attnsec.sym %reldir%/attnsec.pc.in %reldir%/attnsec/version.h.in

bin_PROGRAMS += %reldir%/cli/attnsec
%canon_reldir%_cli_attnsec_SOURCES = \
	%reldir%/cli/cli.h \
	%reldir%/cli/cli.c \
	%reldir%/cli/commands.h \
	%reldir%/cli/attnsec.c \
	%reldir%/cli/cmd_inspect.c \
	%reldir%/cli/cmd_release.c \
	%reldir%/cli/cmd_model.c \
	%reldir%/cli/cmd_data.c \
	%reldir%/cli/cmd_attack.c \
	%reldir%/cli/cmd_attack_dlg.c \
	%reldir%/cli/cmd_defend.c \
	%reldir%/cli/cmd_defend_copyright.h \
	%reldir%/cli/cmd_defend_corpus.c \
	%reldir%/cli/cmd_defend_dp_attn.c \
	%reldir%/cli/cmd_defend_dpsgd.c \
	%reldir%/cli/cmd_account.c \
	%reldir%/cli/cmd_batch.c \
	%reldir%/cli/batch_plan.h \
	%reldir%/cli/batch_plan.c \
	%reldir%/cli/batch_result.h \
	%reldir%/cli/batch_result.c \
	%reldir%/cli/ledger.h \
	%reldir%/cli/ledger.c \
	%reldir%/cli/curve.h \
	%reldir%/cli/curve.c \
	%reldir%/cli/slurp.h \
	%reldir%/cli/slurp.c \
	%reldir%/cli/cmd_audit.c \
	%reldir%/cli/cmd_audit_text.c \
	%reldir%/cli/audit.h \
	%reldir%/printable.h \
	%reldir%/printable.c
%canon_reldir%_cli_attnsec_CFLAGS = $(AM_CFLAGS) $(DEPS_CFLAGS)
%canon_reldir%_cli_attnsec_CPPFLAGS = $(AM_CPPFLAGS) -DASEC_PKGDATADIR=\"$(pkgdatadir)\" \
	-DASEC_SRCDIR_DATASETS=\"$(abs_top_srcdir)/datasets\"
%canon_reldir%_cli_attnsec_LDADD = %reldir%/libattnsec.la $(DEPS_LIBS)
