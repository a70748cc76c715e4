#!/usr/bin/env python3
"""Write the malformed-file corpus for the strict .npy and safetensors
readers (RELIABILITY.md section 5; attnsec-formats(5)).

Standard library only.  Run from anywhere:

    python3 tests/malformed/gen_malformed.py

It (re)writes tests/malformed/npy-*.npy, tests/malformed/st-*.safetensors,
tests/malformed/EXPECTED.tsv and tests/malformed/local.mk (the EXTRA_DIST
list).  Each EXPECTED.tsv line is

    FILE <TAB> SUBSTRING

and the reader's one-line message for FILE must contain SUBSTRING.  Every
file here must be rejected from its header alone (exit 65 from
'attnsec inspect' without --verify); tests/check_io.c and
tests/cli/inspect.sh check that.  Output is deterministic.
"""

import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = []  # (file name, bytes, expected substring)

# ------------------------------------------------------------------ .npy

MAGIC = b"\x93NUMPY"


def npy_raw(header, version=(1, 0), pad=True, data=b"", hlen=None):
    """A .npy file from header text; pad like NumPy (to 64, with '\\n')."""
    h = header.encode("latin-1") if isinstance(header, str) else header
    prefix_len = 10 if version[0] == 1 else 12
    if pad:
        total = prefix_len + len(h) + 1
        h = h + b" " * ((64 - total % 64) % 64) + b"\n"
    n = len(h) if hlen is None else hlen
    if version[0] == 1:
        pre = MAGIC + bytes(version) + struct.pack("<H", n)
    else:
        pre = MAGIC + bytes(version) + struct.pack("<I", n)
    return pre + h + data


def hdr(descr="'<f8'", fortran="False", shape="(2,)"):
    return "{'descr': %s, 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, shape)


def npy(name, blob, expect):
    CASES.append(("npy-" + name + ".npy", blob, expect))


def npy_corpus():
    good = npy_raw(hdr(), data=b"\0" * 16)
    npy("empty", b"", "shorter than the 10-byte")
    npy("truncated-prefix", MAGIC + b"\x01", "shorter than the 10-byte")
    npy("truncated-header", good[:40], "exceeds file size")
    npy("bad-magic", b"\x93NUMPX" + good[6:], "bad magic")
    npy("bad-magic-zip", b"PK\x03\x04" + good[4:], "bad magic")
    npy("bad-magic-text", b"descr,fortran_order,shape\n1,2,3\n", "bad magic")
    npy("version-4-0", npy_raw(hdr(), version=(4, 0), data=b"\0" * 16),
        "unsupported .npy version 4.0")
    npy("version-1-1", npy_raw(hdr(), version=(1, 1), data=b"\0" * 16),
        "unsupported .npy version 1.1")
    npy("version-0-0", npy_raw(hdr(), version=(0, 0), data=b"\0" * 16),
        "unsupported .npy version 0.0")
    npy("v2-truncated-prefix", MAGIC + b"\x02\x00\x10\x00\x00", "12-byte")
    # A 90-byte file declaring a 70000-byte header (mlx #3365).
    blob = MAGIC + b"\x02\x00" + struct.pack("<I", 70000)
    npy("header-len-past-eof", blob + b" " * (90 - len(blob)),
        "header_len 70000 exceeds file size 90")
    blob = MAGIC + b"\x01\x00" + struct.pack("<H", 65535)
    npy("header-len-past-eof-v1", blob + b" " * 90, "header_len 65535 exceeds file size")
    blob = MAGIC + b"\x03\x00" + struct.pack("<I", 0xFFFFFFFF)
    npy("header-len-4gib", blob + b"{}\n", "header_len 4294967295 exceeds file size")
    # Real headers bigger than the default cap (10000) and the hard maximum.
    big = hdr() + " " * 20000
    npy("header-len-over-cap", npy_raw(big, version=(2, 0), data=b"\0" * 16),
        "exceeds the cap of 10000")
    big = hdr() + " " * 66000
    npy("header-len-over-hard-max", npy_raw(big, version=(2, 0), data=b"\0" * 16),
        "exceeds the hard maximum 65535")
    npy("header-len-zero", npy_raw(b"", pad=False, hlen=0), "header_len is 0")
    npy("no-newline", npy_raw(hdr() + "    ", pad=False, data=b"\0" * 16),
        "does not end with a newline")
    npy("non-ascii", npy_raw(hdr(descr="'<f8'", shape="(2,)") + " \xe9", data=b"\0" * 16),
        "printable ASCII")
    npy("control-char", npy_raw(hdr().replace(", 'shape'", ",\t'shape'"),
                                data=b"\0" * 16), "printable ASCII")
    npy("embedded-newline", npy_raw(hdr().replace(", 'shape'", ",\n'shape'"),
                                    data=b"\0" * 16), "printable ASCII")
    npy("not-dict-tuple", npy_raw("('<f8', False, (2,))", data=b"\0" * 16),
        "not a dict literal")
    npy("not-dict-list", npy_raw("['descr', 'shape']", data=b"\0" * 16),
        "not a dict literal")
    npy("missing-descr", npy_raw("{'fortran_order': False, 'shape': (2,), }",
                                 data=b"\0" * 16), "no 'descr' key")
    npy("missing-fortran", npy_raw("{'descr': '<f8', 'shape': (2,), }", data=b"\0" * 16),
        "no 'fortran_order' key")
    npy("missing-shape", npy_raw("{'descr': '<f8', 'fortran_order': False, }",
                                 data=b"\0" * 16), "no 'shape' key")
    npy("extra-key", npy_raw(hdr()[:-1] + "'foo': 1, }", data=b"\0" * 16),
        "unknown key 'foo'")
    npy("duplicate-descr", npy_raw("{'descr': '<f8', 'descr': '<f4', "
                                   "'fortran_order': False, 'shape': (2,), }",
                                   data=b"\0" * 16), "duplicate key 'descr'")
    npy("duplicate-shape", npy_raw(hdr()[:-1] + "'shape': (4,), }", data=b"\0" * 16),
        "duplicate key 'shape'")
    npy("duplicate-fortran", npy_raw(hdr()[:-1] + "'fortran_order': True, }",
                                     data=b"\0" * 16), "duplicate key 'fortran_order'")
    npy("object-dtype", npy_raw(hdr(descr="'|O'"), data=b"\0" * 16), "object dtype")
    npy("structured-dtype", npy_raw(hdr(descr="[('a', '<f8')]"), data=b"\0" * 16),
        "structured dtype")
    npy("unicode-dtype", npy_raw(hdr(descr="'<U8'"), data=b"\0" * 64), "string dtype")
    npy("bytes-dtype", npy_raw(hdr(descr="'|S4'"), data=b"\0" * 8), "string dtype")
    npy("void-dtype", npy_raw(hdr(descr="'|V8'"), data=b"\0" * 16), "void")
    npy("datetime-dtype", npy_raw(hdr(descr="'<M8[ns]'"), data=b"\0" * 16),
        "datetime dtype")
    npy("timedelta-dtype", npy_raw(hdr(descr="'<m8[s]'"), data=b"\0" * 16),
        "datetime dtype")
    npy("big-endian", npy_raw(hdr(descr="'>f8'"), data=b"\0" * 16), "big-endian dtype")
    npy("big-endian-int", npy_raw(hdr(descr="'>i4'"), data=b"\0" * 8), "big-endian dtype")
    npy("complex-dtype", npy_raw(hdr(descr="'<c16'"), data=b"\0" * 32), "complex dtype")
    npy("native-order", npy_raw(hdr(descr="'=f8'"), data=b"\0" * 16), "native-order")
    npy("float128", npy_raw(hdr(descr="'<f16'"), data=b"\0" * 32), "is not supported")
    npy("descr-unquoted", npy_raw(hdr(descr="float64"), data=b"\0" * 16),
        "expected a quoted descr")
    npy("negative-dim", npy_raw(hdr(shape="(-1, 3)"), data=b"\0" * 16),
        "negative dimension")
    # 2^32 * 2^32 * 16 elements: the count overflows a 64-bit size_t.
    npy("overflow-dims", npy_raw(hdr(shape="(4294967296, 4294967296, 16)")),
        "element count overflows")
    # 2^62 elements of 8 bytes: the count fits, the byte size does not.
    npy("overflow-bytes", npy_raw(hdr(shape="(4611686018427387904,)")),
        "byte size overflows")
    # A 128-byte file declaring a 1 TiB tensor.
    npy("huge-1tib", npy_raw(hdr(shape="(137438953472,)")),
        "needs 1099511627776 (data short)")
    npy("ndim-65", npy_raw(hdr(shape="(" + "1, " * 65 + ")"), data=b"\0" * 8),
        "more than 64 dimensions")
    npy("dim-20-digits", npy_raw(hdr(shape="(10000000000000000000,)")),
        "more than 19 digits")
    npy("dim-over-int64", npy_raw(hdr(shape="(9999999999999999999,)")),
        "above 2^63 - 1")
    npy("dim-leading-zero", npy_raw(hdr(shape="(02,)"), data=b"\0" * 16), "leading zero")
    npy("dim-plus-sign", npy_raw(hdr(shape="(+2,)"), data=b"\0" * 16),
        "not a non-negative decimal integer")
    npy("dim-underscore", npy_raw(hdr(shape="(1_0,)"), data=b"\0" * 80),
        "not a non-negative decimal integer")
    npy("dim-hex", npy_raw(hdr(shape="(0x2,)"), data=b"\0" * 16),
        "not a non-negative decimal integer")
    npy("dim-float", npy_raw(hdr(shape="(2.0,)"), data=b"\0" * 16),
        "expected ',' or ')'")
    npy("dim-empty-entry", npy_raw(hdr(shape="(,)"), data=b"\0" * 8),
        "not a non-negative decimal integer")
    npy("shape-int", npy_raw(hdr(shape="2"), data=b"\0" * 16), "shape is not a tuple")
    npy("shape-list", npy_raw(hdr(shape="[2]"), data=b"\0" * 16), "shape is not a tuple")
    npy("shape-paren-int", npy_raw(hdr(shape="(2)"), data=b"\0" * 16),
        "is not a tuple (write (2,) for 1-d)")
    npy("shape-unclosed", npy_raw("{'descr': '<f8', 'fortran_order': False, "
                                  "'shape': (2, ", data=b"\0" * 16), "shape entry 1 is not")
    npy("fortran-int", npy_raw(hdr(fortran="1"), data=b"\0" * 16), "True or False")
    npy("fortran-lower", npy_raw(hdr(fortran="true"), data=b"\0" * 16), "True or False")
    npy("fortran-truex", npy_raw(hdr(fortran="Truex"), data=b"\0" * 16), "True or False")
    npy("data-short", npy_raw(hdr(shape="(4,)"), data=b"\0" * 24), "(data short)")
    npy("data-long", npy_raw(hdr(), data=b"\0" * 24), "8 trailing bytes")
    npy("data-for-empty", npy_raw(hdr(shape="(0,)"), data=b"\0" * 8), "trailing bytes")
    npy("scalar-no-data", npy_raw(hdr(shape="()")), "(data short)")
    npy("text-after-dict", npy_raw(hdr() + " x", data=b"\0" * 16),
        "unexpected text after the dict")
    npy("unterminated-string", npy_raw("{'descr: '<f8', 'fortran_order': False, "
                                       "'shape': (2,), }", data=b"\0" * 16),
        "expected ':'")
    npy("unterminated-key", npy_raw("{'descr", data=b"\0" * 16), "unterminated key")
    npy("escape-in-string", npy_raw(hdr(descr="'<f\\x38'"), data=b"\0" * 16),
        "escape sequence")
    npy("missing-colon", npy_raw(hdr().replace("'descr':", "'descr'"), data=b"\0" * 16),
        "expected ':'")
    npy("missing-comma", npy_raw(hdr().replace("'<f8',", "'<f8'"), data=b"\0" * 16),
        "expected ',' or '}'")
    npy("unquoted-key", npy_raw(hdr().replace("'descr'", "descr"), data=b"\0" * 16),
        "expected a quoted key")
    npy("unclosed-dict", npy_raw(hdr()[:-1], data=b"\0" * 16), "expected a quoted key")


# ----------------------------------------------------------- safetensors

def st_raw(header, data=b"", pad=True, n=None):
    h = header.encode("utf-8") if isinstance(header, str) else header
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h) if n is None else n) + h + data


def st_json(obj, data=b""):
    return st_raw(json.dumps(obj, separators=(",", ":")), data)


def ent(dtype="F64", shape=(2,), offs=(0, 16)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offs)}


def st(name, blob, expect):
    CASES.append(("st-" + name + ".safetensors", blob, expect))


def st_corpus():
    z16 = b"\0" * 16
    st("empty", b"", "shorter than the 8-byte")
    st("short-length", b"\x10\0\0\0\0", "shorter than the 8-byte")
    st("len-past-eof", struct.pack("<Q", 1000) + b'{"a":1}', "exceeds file size")
    st("len-2-63", struct.pack("<Q", 2**63) + b"{}      ", "header length 9223372036854775808 exceeds file size")
    st("len-max-u64", struct.pack("<Q", 2**64 - 1) + b"{}      ", "exceeds file size")
    st("len-zero", struct.pack("<Q", 0) + b"{}", "below the minimum 2")
    st("len-one", struct.pack("<Q", 1) + b"{}", "below the minimum 2")
    st("npy-renamed", MAGIC + b"\x01\x00v\x00{'descr': '<f8', }", "exceeds file size")
    st("not-json", st_raw("hello world"), "does not start with '{'")
    st("array-header", st_raw("[1,2,3]"), "does not start with '{'")
    st("leading-space", st_raw(" {}"), "does not start with '{'")
    st("utf8-bom", st_raw(b"\xef\xbb\xbf{}"), "does not start with '{'")
    st("invalid-json", st_raw('{"a": }'), "invalid JSON header")
    st("unterminated", st_raw('{"a":{"dtype":"F64"'), "invalid JSON header")
    st("single-quotes", st_raw("{'a': 1}"), "invalid JSON header")
    st("invalid-utf8", st_raw(b'{"\xff":{"dtype":"F64","shape":[],"data_offsets":[0,8]}}',
                              z16[:8]), "invalid JSON header")
    st("nul-in-key", st_raw('{"a\\u0000b":{"dtype":"F64","shape":[],'
                            '"data_offsets":[0,8]}}', z16[:8]), "invalid JSON header")
    # jansson quotes the offending text; a raw newline in it must not
    # break the one-line message.
    st("raw-newline-in-key", st_raw('{"a\nb":{}}'), "invalid JSON header")
    st("bad-escape-newline", st_raw('{"a\\u000\n":{}}'), "invalid JSON header")
    st("huge-integer", st_raw('{"a":{"dtype":"F64","shape":[99999999999999999999],'
                              '"data_offsets":[0,8]}}', z16[:8]), "invalid JSON header")
    st("duplicate-tensor", st_raw('{"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},'
                                  '"a":{"dtype":"F64","shape":[1],"data_offsets":[8,16]}}',
                                  z16), "duplicate")
    st("duplicate-field", st_raw('{"a":{"dtype":"F64","dtype":"F32","shape":[2],'
                                 '"data_offsets":[0,16]}}', z16), "duplicate")
    st("duplicate-metadata", st_raw('{"__metadata__":{"k":"1","k":"2"}}'), "duplicate")
    st("duplicate-metadata-key", st_raw('{"__metadata__":{},"__metadata__":{}}'),
       "duplicate")
    st("overlap", st_json({"a": ent(offs=(0, 16)), "b": ent(offs=(8, 24))}, b"\0" * 24),
       "overlaps")
    st("gap", st_json({"a": ent(shape=(1,), offs=(0, 8)),
                       "b": ent(shape=(1,), offs=(16, 24))}, b"\0" * 24), "gap of 8 bytes")
    st("nonzero-start", st_json({"a": ent(shape=(1,), offs=(8, 16))}, z16),
       "gap of 8 bytes before tensor 'a'")
    st("out-of-bounds", st_json({"a": ent(shape=(100,), offs=(0, 800))}, z16),
       "out of bounds")
    st("trailing-data", st_json({"a": ent(shape=(1,), offs=(0, 8))}, z16),
       "(trailing bytes)")
    st("data-without-tensors", st_json({}, z16), "(trailing bytes)")
    st("offsets-one", st_json({"a": {"dtype": "F64", "shape": [2], "data_offsets": [16]}},
                              z16), "not an array of two integers")
    st("offsets-three", st_json({"a": ent(offs=(0, 16, 16))}, z16),
       "not an array of two integers")
    st("offsets-float", st_raw('{"a":{"dtype":"F64","shape":[2],"data_offsets":[0,16.0]}}',
                               z16), "not an array of two integers")
    st("offsets-string", st_json({"a": ent(offs=("0", "16"))}, z16),
       "not an array of two integers")
    st("offsets-object", st_json({"a": {"dtype": "F64", "shape": [2],
                                        "data_offsets": {"begin": 0, "end": 16}}}, z16),
       "not an array of two integers")
    st("offsets-negative", st_json({"a": ent(offs=(-16, 0))}, z16), "negative offset")
    st("offsets-reversed", st_json({"a": ent(offs=(16, 0))}, z16), "begin after end")
    st("unknown-dtype", st_json({"a": ent(dtype="F8_E4M3", shape=(16,))}, z16),
       "unknown dtype 'F8_E4M3'")
    st("dtype-lowercase", st_json({"a": ent(dtype="f64")}, z16), "unknown dtype 'f64'")
    st("dtype-complex", st_json({"a": ent(dtype="C64", shape=(2,))}, z16),
       "unknown dtype 'C64'")
    st("dtype-not-string", st_json({"a": ent(dtype=64)}, z16), "dtype is not a string")
    st("size-mismatch", st_json({"a": ent(shape=(3,), offs=(0, 16))}, z16),
       "(size mismatch)")
    st("size-mismatch-dtype", st_json({"a": ent(dtype="F32", shape=(2,), offs=(0, 16))},
                                      z16), "(size mismatch)")
    st("negative-shape", st_json({"a": ent(shape=(-2,))}, z16), "shape[0] is negative")
    st("shape-float", st_raw('{"a":{"dtype":"F64","shape":[2.0],"data_offsets":[0,16]}}',
                             z16), "shape[0] is not an integer")
    st("shape-string", st_json({"a": ent(shape=("2",))}, z16), "shape[0] is not an integer")
    st("shape-not-array", st_json({"a": {"dtype": "F64", "shape": 2,
                                         "data_offsets": [0, 16]}}, z16),
       "shape is not an array")
    st("shape-65", st_json({"a": ent(shape=(1,) * 65, offs=(0, 8))}, z16[:8]),
       "more than 64")
    st("shape-overflow", st_json({"a": ent(shape=(2**32, 2**32, 2**32), offs=(0, 8))},
                                 z16[:8]), "element count overflows")
    st("shape-bytes-overflow", st_json({"a": ent(shape=(2**62,), offs=(0, 8))}, z16[:8]),
       "byte size overflows")
    st("metadata-non-string", st_json({"__metadata__": {"a": 1}}), "is not a string")
    st("metadata-null", st_json({"__metadata__": {"a": None}}), "is not a string")
    st("metadata-nested", st_json({"__metadata__": {"a": {"b": "c"}}}), "is not a string")
    st("metadata-not-object", st_json({"__metadata__": "x"}), "__metadata__ is not an object")
    st("metadata-array", st_json({"__metadata__": ["x"]}), "__metadata__ is not an object")
    st("unknown-field", st_json({"a": dict(ent(), foo=1)}, z16), "unknown field 'foo'")
    st("missing-dtype", st_json({"a": {"shape": [2], "data_offsets": [0, 16]}}, z16),
       "missing field 'dtype'")
    st("missing-shape", st_json({"a": {"dtype": "F64", "data_offsets": [0, 16]}}, z16),
       "missing field 'shape'")
    st("missing-offsets", st_json({"a": {"dtype": "F64", "shape": [2]}}, z16),
       "missing field 'data_offsets'")
    st("entry-not-object", st_json({"a": [1, 2]}), "entry is not an object")
    st("entry-string", st_json({"a": "F64"}), "entry is not an object")
    st("empty-name", st_json({"": ent()}, z16), "empty name")
    st("deep-nesting", st_raw('{"a":' + "[" * 10000 + "]" * 10000 + "}"),
       "nesting depth exceeds 64")
    st("depth-65", st_raw('{"__metadata__":' + "[" * 64 + "]" * 64 + "}"),
       "nesting depth exceeds 64")
    st("trailing-garbage", st_raw(b"{}xx    ", pad=False), "trailing garbage")
    st("trailing-nul", st_raw(b"{}\0\0\0\0\0\0", pad=False), "NUL byte")
    st("two-objects", st_raw(b"{}{}    ", pad=False), "trailing garbage")
    # A 1 TiB tensor declared in a file of a few dozen bytes.
    st("huge-1tib", st_json({"a": ent(shape=(2**37,), offs=(0, 2**40))}, z16[:8]),
       "out of bounds")
    st("huge-shape-small-offsets", st_json({"a": ent(shape=(2**37,), offs=(0, 8))},
                                           z16[:8]), "(size mismatch)")
    st("offsets-int64-max", st_json({"a": ent(shape=(1,), offs=(0, 2**63 - 1))}, z16[:8]),
       "out of bounds")


def main():
    npy_corpus()
    st_corpus()
    names = set()
    for f in os.listdir(HERE):
        if f.startswith(("npy-", "st-")):
            os.unlink(os.path.join(HERE, f))
    with open(os.path.join(HERE, "EXPECTED.tsv"), "w") as idx:
        idx.write("# file\tsubstring of the one-line error (tests/malformed/gen_malformed.py)\n")
        for name, blob, expect in CASES:
            assert name not in names, name
            assert "\t" not in expect and "\n" not in expect
            names.add(name)
            with open(os.path.join(HERE, name), "wb") as fp:
                fp.write(blob)
            idx.write("%s\t%s\n" % (name, expect))
    with open(os.path.join(HERE, "local.mk"), "w") as mk:
        mk.write("# tests/malformed/local.mk - the malformed-file corpus (gen_malformed.py\n"
                 "# writes it and this list; EXPECTED.tsv indexes it).  Included from\n"
                 "# tests/local.mk.\n"
                 "EXTRA_DIST += \\\n"
                 "\t%reldir%/gen_malformed.py \\\n"
                 "\t%reldir%/EXPECTED.tsv")
        for name, _, _ in CASES:
            mk.write(" \\\n\t%%reldir%%/%s" % name)
        mk.write("\n")
    print("%d files" % len(CASES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
