# man/local.mk - manual pages (mdoc).  tests/man-lint.sh runs mandoc -Tlint on
# every page and checks that every exported function has a section-3 page.
dist_man_MANS += \
	%reldir%/attnsec.1 \
	%reldir%/libattnsec.3 \
	%reldir%/asec_mat.3 \
	%reldir%/asec_rng.3 \
	%reldir%/asec_report.3 \
	%reldir%/asec_noise.3 \
	%reldir%/attnsec-release.1 \
	%reldir%/attnsec-attack.1 \
	%reldir%/asec_attn_invert.3 \
	%reldir%/asec_dlg.3 \
	%reldir%/asec_image.3 \
	%reldir%/attnsec-defend.1 \
	%reldir%/asec_copyright.3 \
	%reldir%/asec_dp_attn.3 \
	%reldir%/asec_dpsgd.3 \
	%reldir%/attnsec-inspect.1 \
	%reldir%/attnsec-formats.5 \
	%reldir%/asec_io.3
dist_man_MANS += \
	%reldir%/asec_attn.3 \
	%reldir%/asec_model.3 \
	%reldir%/asec_data.3 \
	%reldir%/attnsec-model.1 \
	%reldir%/attnsec-data.1
dist_man_MANS += \
	%reldir%/attnsec-audit.1 \
	%reldir%/attnsec-batch.1 \
	%reldir%/attnsec-report.5
dist_man_MANS += %reldir%/attnsec-security.7
dist_man_MANS += \
	%reldir%/attnsec-account.1 \
	%reldir%/asec_acct.3
