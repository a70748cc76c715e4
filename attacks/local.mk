# attacks/local.mk - attack modules (use src/ only).  Each builds into the
# convenience library below, which is linked into src/libattnsec.la.
