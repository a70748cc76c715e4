# bench/local.mk - 'make bench' prints speed figures and ratios to the anchors.
# Not part of make check (tests never assert on wall time).
bench: $(BENCH_PROGRAMS)
	@for b in $(BENCH_PROGRAMS); do echo "== $$b"; ./$$b || exit 1; done
.PHONY: bench
