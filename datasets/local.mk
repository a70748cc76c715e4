# datasets/local.mk - shipped data, test fixtures and the scripts that made them.
# Every file is listed explicitly; make distcheck proves the list complete.
EXTRA_DIST += \
	%reldir%/README.md
EXTRA_DIST +=
EXTRA_DIST +=
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
EXTRA_DIST +=

