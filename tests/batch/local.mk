# tests/batch/local.mk - tests of 'attnsec batch' and the campaign templates
# installed under $(docdir)/examples (attnsec-batch(1)).
ASEC_SHELL_TESTS += \
	tests/cli/batch.sh \
	tests/cli/audit.sh \
	%reldir%/kill-resume.sh \
	%reldir%/parallel.sh
EXTRA_DIST += %reldir%/campaign50.json %reldir%/slurm-localhost.sh

batchexamplesdir = $(docdir)/examples
dist_batchexamples_DATA = \
	%reldir%/slurm-array.sbatch \
	%reldir%/slurm-submit.sh \
	%reldir%/run-parallel.sh \
	%reldir%/sigma-sweep.json
