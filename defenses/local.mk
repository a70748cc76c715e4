# defenses/local.mk - defense modules (use src/ only).  Each builds into the
# convenience library below, which is linked into src/libattnsec.la.
noinst_LTLIBRARIES += %reldir%/libasec_defenses.la
%canon_reldir%_libasec_defenses_la_SOURCES = \
	%reldir%/copyright.c \
	%reldir%/copyright_engine.c \
	%reldir%/copyright_lm.c \
	%reldir%/dp_attn.c \
	%reldir%/dpsgd.c
%canon_reldir%_libasec_defenses_la_CFLAGS = $(AM_CFLAGS) $(VISIBILITY_CFLAGS) $(DEPS_CFLAGS)
ATTNSEC_MODULE_LIBS += %reldir%/libasec_defenses.la
