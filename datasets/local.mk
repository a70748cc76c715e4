# datasets/local.mk - shipped data, test fixtures and the scripts that made them.
# Every file is listed explicitly; make distcheck proves the list complete.
EXTRA_DIST += \
	%reldir%/README.md
