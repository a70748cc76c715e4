# man/local.mk - manual pages (mdoc).  tests/man-lint.sh runs mandoc -Tlint on
# every page and checks that every exported function has a section-3 page.
dist_man_MANS += \
	%reldir%/attnsec.1 \
	%reldir%/libattnsec.3 \
	%reldir%/asec_mat.3 \
	%reldir%/asec_rng.3 \
	%reldir%/asec_report.3
