# attacks/local.mk - attack modules (use src/ only).  Each builds into the
# convenience library below, which is linked into src/libattnsec.la.
noinst_LTLIBRARIES += %reldir%/libasec_attacks.la
%canon_reldir%_libasec_attacks_la_SOURCES = %reldir%/attn_invert.c %reldir%/dlg.c
%canon_reldir%_libasec_attacks_la_CFLAGS = $(AM_CFLAGS) $(VISIBILITY_CFLAGS) $(DEPS_CFLAGS)
ATTNSEC_MODULE_LIBS += %reldir%/libasec_attacks.la
