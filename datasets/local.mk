# datasets/local.mk - shipped data, test fixtures and the scripts that made them.
# Every file is listed explicitly; make distcheck proves the list complete.
EXTRA_DIST += \
	%reldir%/README.md
EXTRA_DIST += \
	%reldir%/gen/make_attn_invert_fixtures.py \
	%reldir%/fixtures/attn_invert/plain_params.npy \
	%reldir%/fixtures/attn_invert/plain_x.npy \
	%reldir%/fixtures/attn_invert/plain_w.npy \
	%reldir%/fixtures/attn_invert/plain_b.npy \
	%reldir%/fixtures/attn_invert/plain_loss.npy \
	%reldir%/fixtures/attn_invert/plain_grad.npy \
	%reldir%/fixtures/attn_invert/plain_jac.npy \
	%reldir%/fixtures/attn_invert/plain_dir.npy \
	%reldir%/fixtures/attn_invert/plain_hvp.npy \
	%reldir%/fixtures/attn_invert/causal_params.npy \
	%reldir%/fixtures/attn_invert/causal_x.npy \
	%reldir%/fixtures/attn_invert/causal_w.npy \
	%reldir%/fixtures/attn_invert/causal_b.npy \
	%reldir%/fixtures/attn_invert/causal_loss.npy \
	%reldir%/fixtures/attn_invert/causal_grad.npy \
	%reldir%/fixtures/attn_invert/causal_jac.npy \
	%reldir%/fixtures/attn_invert/causal_dir.npy \
	%reldir%/fixtures/attn_invert/causal_hvp.npy \
	%reldir%/fixtures/attn_invert/heads_params.npy \
	%reldir%/fixtures/attn_invert/heads_x.npy \
	%reldir%/fixtures/attn_invert/heads_w.npy \
	%reldir%/fixtures/attn_invert/heads_b.npy \
	%reldir%/fixtures/attn_invert/heads_loss.npy \
	%reldir%/fixtures/attn_invert/heads_grad.npy \
	%reldir%/fixtures/attn_invert/heads_jac.npy \
	%reldir%/fixtures/attn_invert/heads_dir.npy \
	%reldir%/fixtures/attn_invert/heads_hvp.npy \
	%reldir%/fixtures/attn_invert/query_params.npy \
	%reldir%/fixtures/attn_invert/query_x.npy \
	%reldir%/fixtures/attn_invert/query_known.npy \
	%reldir%/fixtures/attn_invert/query_w.npy \
	%reldir%/fixtures/attn_invert/query_b.npy \
	%reldir%/fixtures/attn_invert/query_loss.npy \
	%reldir%/fixtures/attn_invert/query_grad.npy \
	%reldir%/fixtures/attn_invert/query_jac.npy \
	%reldir%/fixtures/attn_invert/query_dir.npy \
	%reldir%/fixtures/attn_invert/query_hvp.npy \
	%reldir%/fixtures/attn_invert/key_params.npy \
	%reldir%/fixtures/attn_invert/key_x.npy \
	%reldir%/fixtures/attn_invert/key_known.npy \
	%reldir%/fixtures/attn_invert/key_w.npy \
	%reldir%/fixtures/attn_invert/key_b.npy \
	%reldir%/fixtures/attn_invert/key_loss.npy \
	%reldir%/fixtures/attn_invert/key_grad.npy \
	%reldir%/fixtures/attn_invert/key_jac.npy \
	%reldir%/fixtures/attn_invert/key_dir.npy \
	%reldir%/fixtures/attn_invert/key_hvp.npy \
	%reldir%/fixtures/attn_invert/both_params.npy \
	%reldir%/fixtures/attn_invert/both_x.npy \
	%reldir%/fixtures/attn_invert/both_w.npy \
	%reldir%/fixtures/attn_invert/both_b.npy \
	%reldir%/fixtures/attn_invert/both_loss.npy \
	%reldir%/fixtures/attn_invert/both_grad.npy \
	%reldir%/fixtures/attn_invert/both_jac.npy \
	%reldir%/fixtures/attn_invert/both_dir.npy \
	%reldir%/fixtures/attn_invert/both_hvp.npy \
	%reldir%/fixtures/attn_invert/values_params.npy \
	%reldir%/fixtures/attn_invert/values_x.npy \
	%reldir%/fixtures/attn_invert/values_w.npy \
	%reldir%/fixtures/attn_invert/values_b.npy \
	%reldir%/fixtures/attn_invert/values_wv.npy \
	%reldir%/fixtures/attn_invert/values_o.npy \
	%reldir%/fixtures/attn_invert/values_loss.npy \
	%reldir%/fixtures/attn_invert/values_grad.npy \
	%reldir%/fixtures/attn_invert/values_jac.npy \
	%reldir%/fixtures/attn_invert/values_dir.npy \
	%reldir%/fixtures/attn_invert/values_hvp.npy \
	%reldir%/fixtures/attn_invert/both_values_params.npy \
	%reldir%/fixtures/attn_invert/both_values_x.npy \
	%reldir%/fixtures/attn_invert/both_values_w.npy \
	%reldir%/fixtures/attn_invert/both_values_b.npy \
	%reldir%/fixtures/attn_invert/both_values_wv.npy \
	%reldir%/fixtures/attn_invert/both_values_o.npy \
	%reldir%/fixtures/attn_invert/both_values_loss.npy \
	%reldir%/fixtures/attn_invert/both_values_grad.npy \
	%reldir%/fixtures/attn_invert/both_values_jac.npy \
	%reldir%/fixtures/attn_invert/both_values_dir.npy \
	%reldir%/fixtures/attn_invert/both_values_hvp.npy
EXTRA_DIST += \
	%reldir%/gen/zcdp_epsilon.py
EXTRA_DIST += \
	%reldir%/gen/make_copyright_fixtures.py \
	%reldir%/fixtures/copyright/A.npy \
	%reldir%/fixtures/copyright/b.npy \
	%reldir%/fixtures/copyright/mask.npy \
	%reldir%/fixtures/copyright/mask_empty.npy \
	%reldir%/fixtures/copyright/mask_bad.npy \
	%reldir%/fixtures/copyright/A_nan.npy
EXTRA_DIST += \
	%reldir%/gen/make_io_fixtures.py \
	%reldir%/fixtures/npy/EXPECTED.txt \
	%reldir%/fixtures/npy/b1_2x2.npy \
	%reldir%/fixtures/npy/f2_5.npy \
	%reldir%/fixtures/npy/f4_4.npy \
	%reldir%/fixtures/npy/f8_2x3.npy \
	%reldir%/fixtures/npy/f8_empty_0x3.npy \
	%reldir%/fixtures/npy/f8_fortran_3x4.npy \
	%reldir%/fixtures/npy/f8_rank32.npy \
	%reldir%/fixtures/npy/f8_rank7.npy \
	%reldir%/fixtures/npy/f8_scalar.npy \
	%reldir%/fixtures/npy/f8_v2.npy \
	%reldir%/fixtures/npy/f8_v3.npy \
	%reldir%/fixtures/npy/i1_4.npy \
	%reldir%/fixtures/npy/i2_3.npy \
	%reldir%/fixtures/npy/i4_3.npy \
	%reldir%/fixtures/npy/i4_fortran_2x3x4.npy \
	%reldir%/fixtures/npy/i8_2x2.npy \
	%reldir%/fixtures/npy/i8_big.npy \
	%reldir%/fixtures/npy/nonfinite_f8.npy \
	%reldir%/fixtures/npy/u1_3.npy \
	%reldir%/fixtures/npy/u2_3.npy \
	%reldir%/fixtures/npy/u4_3.npy \
	%reldir%/fixtures/npy/u8_3.npy \
	%reldir%/fixtures/npy/u8_big.npy \
	%reldir%/fixtures/safetensors/EXPECTED.txt \
	%reldir%/fixtures/safetensors/all_dtypes.safetensors \
	%reldir%/fixtures/safetensors/no_tensors.safetensors \
	%reldir%/fixtures/safetensors/single_f64.safetensors
EXTRA_DIST += \
	%reldir%/gen/make_engine_fixtures.py \
	%reldir%/gen/make_digits.py \
	%reldir%/gen/make_text.py \
	%reldir%/fixtures/engine/attnblock_l1_h1_b4_hard_sin.safetensors \
	%reldir%/fixtures/engine/attnblock_l2_h4_causal_b1_soft_cls.safetensors \
	%reldir%/fixtures/engine/regression_b1.safetensors \
	%reldir%/fixtures/engine/regression_causal_b4.safetensors \
	%reldir%/fixtures/engine/text_l1_h4_causal_b4_hard_tokens.safetensors \
	%reldir%/fixtures/engine/text_l2_h1_b1_soft_emb.safetensors \
	%reldir%/fixtures/engine/text_l2_h4_causal_b4_soft_tokens.safetensors \
	%reldir%/fixtures/engine/vit_l1_h1_b1_hard.safetensors \
	%reldir%/fixtures/engine/vit_l2_h4_b4_soft_cls.safetensors
EXTRA_DIST += \
	%reldir%/gen/make_dlg_fixtures.py \
	%reldir%/fixtures/dlg/block_b1_hard_G.npy \
	%reldir%/fixtures/dlg/block_b1_hard_dx_cos.npy \
	%reldir%/fixtures/dlg/block_b1_hard_dx_euclid.npy \
	%reldir%/fixtures/dlg/block_b1_hard_labels.npy \
	%reldir%/fixtures/dlg/block_b1_hard_loss_cos.npy \
	%reldir%/fixtures/dlg/block_b1_hard_loss_euclid.npy \
	%reldir%/fixtures/dlg/block_b1_hard_params.npy \
	%reldir%/fixtures/dlg/block_b1_hard_x.npy \
	%reldir%/fixtures/dlg/block_b2_soft_G.npy \
	%reldir%/fixtures/dlg/block_b2_soft_dsoft_cos.npy \
	%reldir%/fixtures/dlg/block_b2_soft_dsoft_euclid.npy \
	%reldir%/fixtures/dlg/block_b2_soft_dx_cos.npy \
	%reldir%/fixtures/dlg/block_b2_soft_dx_euclid.npy \
	%reldir%/fixtures/dlg/block_b2_soft_loss_cos.npy \
	%reldir%/fixtures/dlg/block_b2_soft_loss_euclid.npy \
	%reldir%/fixtures/dlg/block_b2_soft_params.npy \
	%reldir%/fixtures/dlg/block_b2_soft_soft.npy \
	%reldir%/fixtures/dlg/block_b2_soft_x.npy

# The shipped datasets, installed for attnsec data / attnsec model eval
# (ATTNSEC_DATADIR overrides the location; attnsec-data(1)).
asecdigitsdir = $(pkgdatadir)/datasets/digits
dist_asecdigits_DATA = \
	%reldir%/digits/train_images.npy \
	%reldir%/digits/train_labels.npy \
	%reldir%/digits/test_images.npy \
	%reldir%/digits/test_labels.npy
asectextdir = $(pkgdatadir)/datasets/text
dist_asectext_DATA = \
	%reldir%/text/train_tokens.npy \
	%reldir%/text/test_tokens.npy \
	%reldir%/text/vocab.txt \
	%reldir%/text/kjv.txt
EXTRA_DIST += \
	%reldir%/gen/make_dp_attn_fixtures.py \
	%reldir%/fixtures/dp_attn/x.npy \
	%reldir%/fixtures/dp_attn/k.npy \
	%reldir%/fixtures/dp_attn/v.npy \
	%reldir%/fixtures/dp_attn/x_nan.npy \
	%reldir%/fixtures/dp_attn/notpsd.npy
EXTRA_DIST += \
	%reldir%/fixtures/acct/README.md \
	%reldir%/fixtures/acct/dpsgd.json \
	%reldir%/fixtures/acct/mixed.json \
	%reldir%/fixtures/acct/bad-syntax.json \
	%reldir%/fixtures/acct/bad-type.json \
	%reldir%/fixtures/acct/bad-field.json \
	%reldir%/fixtures/acct/bad-count.json \
	%reldir%/fixtures/acct/bad-duplicate.json \
	%reldir%/fixtures/acct/bad-key.json \
	%reldir%/fixtures/acct/bad-sampled.json \
	%reldir%/fixtures/acct/bad-q.json \
	%reldir%/fixtures/acct/bad-sigma.json \
	%reldir%/fixtures/acct/bad-top.json \
	%reldir%/fixtures/acct/bad-deep.json \
	%reldir%/fixtures/acct/bad-overflow.json
