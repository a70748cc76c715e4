#!/usr/bin/python3
"""Write the valid .npy and safetensors fixtures read by tests/check_io.c.

Run from the top of the source tree with Debian's Python (python3-numpy):

    /usr/bin/python3 datasets/gen/make_io_fixtures.py

It writes datasets/fixtures/npy/*.npy with NumPy's own writer
(numpy.save and numpy.lib.format.write_array), and
datasets/fixtures/safetensors/*.safetensors by hand with struct and json,
following the safetensors specification (Debian has no python3-safetensors
package).  The expected values go to EXPECTED.txt in each directory, one line per
tensor:

    FILE TENSOR DTYPE FORTRAN NDIM DIM... NELEM HEX... RAW

TENSOR is "-" for .npy files; DTYPE is the safetensors spelling; each HEX
is the IEEE-754 bit pattern of the value as a double, in C order, or "X"
when an I64/U64 value is not exactly representable; RAW is the tensor's
bytes in C order, little-endian, as hex ("-" when empty).  The lists are
datasets/fixtures/npy/EXPECTED.txt and datasets/fixtures/safetensors/EXPECTED.txt.  The C test
compares against these without using the library under test to read them.

Everything is deterministic: the output is byte-identical on every run.
"""

import json
import os
import struct
import sys

import numpy as np
import numpy.lib.format as npformat

TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")
NPY_DIR = os.path.join(TOP, "npy")
ST_DIR = os.path.join(TOP, "safetensors")

ST_NAME = {
    np.dtype("<f8"): "F64", np.dtype("<f4"): "F32", np.dtype("<f2"): "F16",
    np.dtype("<i8"): "I64", np.dtype("<i4"): "I32", np.dtype("<i2"): "I16",
    np.dtype("|i1"): "I8", np.dtype("|u1"): "U8", np.dtype("<u2"): "U16",
    np.dtype("<u4"): "U32", np.dtype("<u8"): "U64", np.dtype("|b1"): "BOOL",
}


def hexbits(x):
    return "%016x" % struct.unpack("<Q", struct.pack("<d", x))[0]


def expected_line(fname, tname, dtname, fortran, arr_c, raw):
    """arr_c: the logical values in C order as Python numbers."""
    vals = []
    for v in arr_c:
        if isinstance(v, int):
            d = float(v)
            vals.append(hexbits(d) if int(d) == v else "X")
        else:
            vals.append(hexbits(float(v)))
    shape = list(SHAPE_OF[(fname, tname)])
    fields = [fname, tname, dtname, str(int(fortran)), str(len(shape))]
    fields += [str(s) for s in shape]
    fields += [str(len(vals))] + vals + [raw.hex() if raw else "-"]
    return " ".join(fields)


SHAPE_OF = {}
LINES = []


def c_values(arr):
    flat = np.ascontiguousarray(arr).reshape(-1)
    if arr.dtype.kind in "iub":
        return [int(x) for x in flat]
    return [float(x) for x in flat]


def c_raw(arr):
    le = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    return np.ascontiguousarray(le).tobytes()


def npy(fname, arr, version=None):
    path = os.path.join(NPY_DIR, fname)
    with open(path, "wb") as fp:
        if version is None:
            np.save(fp, arr, allow_pickle=False)
        else:
            npformat.write_array(fp, arr, version=version, allow_pickle=False)
    fortran = arr.flags.f_contiguous and not arr.flags.c_contiguous
    SHAPE_OF[(fname, "-")] = arr.shape
    LINES.append(expected_line(fname, "-", ST_NAME[arr.dtype], fortran,
                               c_values(arr), c_raw(arr)))
    # Check what NumPy wrote, independently of the C reader.
    back = np.load(path, allow_pickle=False)
    assert back.dtype == arr.dtype and back.shape == arr.shape
    assert np.array_equal(back, arr, equal_nan=arr.dtype.kind == "f")


def bf16_bits(values):
    """bfloat16 bit patterns of values that bfloat16 holds exactly."""
    f = np.array(values, dtype="<f4")
    u = f.view("<u4")
    assert np.all((u & 0xFFFF) == 0), "not exactly representable in bfloat16"
    return (u >> 16).astype("<u2")


def safetensors(fname, tensors, metadata=None, header_order=None):
    """tensors: list of (name, st_dtype, shape, raw_bytes, c_values) in data
    order; header_order: the order of the JSON keys (default: sorted, as
    the reference implementation writes them)."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    off = 0
    entries = {}
    for name, dt, shape, raw, _ in tensors:
        entries[name] = {"dtype": dt, "shape": list(shape),
                         "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    for name in (header_order or sorted(entries)):
        header[name] = entries[name]
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(os.path.join(ST_DIR, fname), "wb") as fp:
        fp.write(struct.pack("<Q", len(text)))
        fp.write(text)
        for t in tensors:
            fp.write(t[3])
    for name, dt, shape, raw, vals in tensors:
        SHAPE_OF[(fname, name)] = shape
        LINES.append(expected_line(fname, name, dt, False, vals, raw))


def st_tensor(name, arr):
    return (name, ST_NAME[arr.dtype], arr.shape, c_raw(arr), c_values(arr))


def main():
    os.makedirs(NPY_DIR, exist_ok=True)
    os.makedirs(ST_DIR, exist_ok=True)

    # ---- .npy, every dtype, NumPy's writer (v1.0 unless stated)
    npy("f8_2x3.npy", np.array([[0.1, -2.5, 1e300], [5e-324, -0.0, 3.0]], "<f8"))
    npy("f4_4.npy", np.array([0.1, -1.5, 3.4e38, 1e-45], "<f4"))
    npy("f2_5.npy", np.array([0.1, -2.0, 65504.0, 6e-8, -0.0], "<f2"))
    npy("i8_2x2.npy", np.array([[-2**53, 2**53], [-1, 0]], "<i8"))
    npy("i8_big.npy", np.array([2**53 + 1, -2**63, 2**63 - 1], "<i8"))
    npy("i4_3.npy", np.array([-2**31, 2**31 - 1, 7], "<i4"))
    npy("i2_3.npy", np.array([-2**15, 2**15 - 1, -7], "<i2"))
    npy("i1_4.npy", np.array([-128, 127, 0, -1], "|i1"))
    npy("u1_3.npy", np.array([0, 255, 17], "|u1"))
    npy("u2_3.npy", np.array([0, 65535, 300], "<u2"))
    npy("u4_3.npy", np.array([0, 2**32 - 1, 70000], "<u4"))
    npy("u8_3.npy", np.array([0, 2**63, 2**53], "<u8"))
    npy("u8_big.npy", np.array([2**64 - 1], "<u8"))
    npy("b1_2x2.npy", np.array([[True, False], [False, True]], "|b1"))
    npy("nonfinite_f8.npy", np.array([np.nan, np.inf, -np.inf, 1.0], "<f8"))

    # ---- layouts and versions
    npy("f8_fortran_3x4.npy", np.asfortranarray(np.arange(12.0).reshape(3, 4)))
    npy("i4_fortran_2x3x4.npy",
        np.asfortranarray(np.arange(24, dtype="<i4").reshape(2, 3, 4)))
    npy("f8_v2.npy", np.array([[1.5, -0.25], [8.0, 1e-310]], "<f8"), version=(2, 0))
    npy("f8_v3.npy", np.array([3.0, 2.0, 1.0], "<f8"), version=(3, 0))
    npy("f8_scalar.npy", np.array(3.25, "<f8"))
    npy("f8_empty_0x3.npy", np.zeros((0, 3), "<f8"))
    npy("f8_rank7.npy", np.arange(12.0).reshape(1, 2, 1, 3, 1, 2, 1))
    npy("f8_rank32.npy", np.array([0.5, -0.5]).reshape((1,) * 31 + (2,)))

    # ---- safetensors, written by hand
    arch = json.dumps({"d_model": 4, "n_heads": 2, "n_layers": 1, "vocab": 10},
                      sort_keys=True)
    bf = bf16_bits([1.0, -2.5, 3.140625, 9.183549615799121e-41])
    bf_vals = [float(x) for x in (bf.astype("<u4") << 16).view("<f4")]
    tensors = [
        st_tensor("a.weight", np.array([[0.1, -2.5, 1e300], [5e-324, -0.0, 3.0]], "<f8")),
        st_tensor("b.bias", np.array([0.1, -1.5, 3.4e38], "<f4")),
        st_tensor("c", np.array([[0.1, -2.0], [65504.0, 6e-8]], "<f2")),
        ("d", "BF16", (4,), bf.tobytes(), bf_vals),
        st_tensor("e", np.array([-2**53, 2**53], "<i8")),
        st_tensor("f", np.array([-2**31, 5], "<i4")),
        st_tensor("g", np.array([-2**15, 5], "<i2")),
        st_tensor("h", np.array([-128, 127], "|i1")),
        st_tensor("i", np.array([0, 255], "|u1")),
        st_tensor("j", np.array([True, False, True], "|b1")),
        st_tensor("k.scalar", np.array(2.75, "<f8")),
        st_tensor("l.empty", np.zeros((0, 4), "<f8")),
        st_tensor("m", np.array([65535, 1], "<u2")),
        st_tensor("n", np.array([2**32 - 1, 1], "<u4")),
        st_tensor("o", np.array([2**63, 1], "<u8")),
    ]
    # Data order differs from the (reversed) header order, so "file order"
    # and "header order" can be told apart.
    safetensors("all_dtypes.safetensors", tensors,
                metadata={"format": "pt", "architecture": arch},
                header_order=[t[0] for t in reversed(tensors)])
    safetensors("single_f64.safetensors",
                [st_tensor("x", np.arange(6.0).reshape(2, 3) / 7.0)])
    safetensors("no_tensors.safetensors", [], metadata={"note": "empty file"})

    for d, ext in ((NPY_DIR, ".npy "), (ST_DIR, ".safetensors ")):
        with open(os.path.join(d, "EXPECTED.txt"), "w") as fp:
            fp.write("# written by datasets/gen/make_io_fixtures.py; see its docstring\n")
            for line in LINES:
                if ext in line.split(" ", 1)[0] + " ":
                    fp.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
