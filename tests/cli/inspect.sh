#!/bin/sh
# attnsec inspect: every file of the malformed corpus exits 65 with exactly
# one stderr line naming the file and the broken rule (the substring listed
# in tests/malformed/EXPECTED.tsv), nothing on stdout and no file created;
# valid fixtures exit 0 (with --verify and --json too); a missing file 66;
# several files give the worst status; --help/--version exit 0.
. "${ASEC_SRCDIR:?}/tests/cli/common.sh"

corpus=$ASEC_SRCDIR/tests/malformed
fixtures=$ASEC_SRCDIR/datasets/fixtures
cwd=$scratch/cwd
mkdir "$cwd" || exit 99
cd "$cwd" || exit 99

run 0 "$ATTNSEC" inspect --help && stdout_has '^Usage: attnsec inspect' "--help" &&
    stderr_empty "inspect --help"
run 0 "$ATTNSEC" inspect -h
run 0 "$ATTNSEC" inspect --version && stdout_has '^attnsec [0-9]' "--version"
run 64 "$ATTNSEC" inspect && stdout_empty "no operand" && stderr_has "missing FILE" "no operand"
run 64 "$ATTNSEC" inspect --bogus "$fixtures/npy/f8_2x3.npy" && stdout_empty "--bogus"

# The malformed corpus.  (run and stderr_lines use $want and $n.)
tab=$(printf '\t')
count=0
while IFS=$tab read -r file expect; do
    case $file in
    '#'* | '') continue ;;
    esac
    count=$((count + 1))
    if run 65 "$ATTNSEC" inspect "$corpus/$file"; then
        stdout_empty "$file"
        stderr_lines 1 "$file"
        stderr_has "^attnsec inspect: $corpus/$file: " "$file"
        grep -q -F -- "$expect" "$scratch/err" ||
            fail "$file: stderr lacks '$expect': $(cat "$scratch/err")"
    fi
    # --verify and --json do not change the verdict.
    run 65 "$ATTNSEC" inspect --verify --json "$corpus/$file" && stderr_lines 1 "$file --json"
done <"$corpus/EXPECTED.tsv"
[ "$count" -ge 60 ] || fail "only $count files in the malformed corpus"

# Valid fixtures, header only and verified.
for f in "$fixtures"/npy/*.npy "$fixtures"/safetensors/*.safetensors; do
    run 0 "$ATTNSEC" inspect "$f" && stderr_empty "$f" && stdout_has "^$f: " "$f"
    run 0 "$ATTNSEC" inspect --verify "$f" && stdout_has "verified:" "$f --verify"
done
run 0 "$ATTNSEC" inspect "$fixtures/npy/f8_fortran_3x4.npy" &&
    stdout_has "npy v1.0" "fortran" && stdout_has "<f8 (F64) shape (3, 4), 96 bytes" "fortran" &&
    stdout_has "fortran_order" "fortran"
run 0 "$ATTNSEC" inspect "$fixtures/npy/f8_v3.npy" && stdout_has "npy v3.0" "v3"
run 0 "$ATTNSEC" inspect "$fixtures/npy/f8_scalar.npy" && stdout_has "shape ()" "scalar"
run 0 "$ATTNSEC" inspect "$fixtures/safetensors/all_dtypes.safetensors" &&
    stdout_has "safetensors, 15 tensors, 2 metadata keys" "all_dtypes" &&
    stdout_has "tensor a.weight: F64 shape (2, 3), 48 bytes at 0" "all_dtypes" &&
    stdout_has "tensor d: BF16 shape (4,)" "all_dtypes" &&
    stdout_has 'metadata architecture = "{\\"d_model\\": 4' "all_dtypes"
run 0 "$ATTNSEC" inspect --verify "$fixtures/npy/nonfinite_f8.npy" &&
    stdout_has "1 NaN, 2 Inf" "nonfinite --verify"
run 0 "$ATTNSEC" inspect --verify "$fixtures/npy/i8_big.npy"

# --json: one document with the key fields (sorted keys, so grep works).
if run 0 "$ATTNSEC" inspect --json --verify "$fixtures/npy/f8_2x3.npy" \
    "$fixtures/safetensors/all_dtypes.safetensors"; then
    stderr_empty "--json"
    stdout_has '"files": \[' "--json"
    stdout_has '"format": "npy"' "--json"
    stdout_has '"format": "safetensors"' "--json"
    stdout_has '"descr": "<f8"' "--json"
    stdout_has '"name": "a.weight"' "--json"
    stdout_has '"architecture": ' "--json"
    stdout_has '"exit": 0' "--json"
    stdout_has '"nan": 0' "--json"
    if [ -x /usr/bin/python3 ]; then
        /usr/bin/python3 -m json.tool "$scratch/out" >/dev/null 2>&1 ||
            fail "--json output does not parse"
    else
        echo "note: /usr/bin/python3 not found; JSON syntax checked by grep only"
    fi
fi

# Missing file, directory, and the worst status of several files.
run 66 "$ATTNSEC" inspect "$scratch/absent.npy" && stderr_lines 1 "missing" &&
    stderr_has "absent.npy: No such file" "missing" && stdout_empty "missing"
run 66 "$ATTNSEC" inspect "$scratch" && stderr_has "is a directory" "directory"
run 65 "$ATTNSEC" inspect "$fixtures/npy/f8_2x3.npy" "$corpus/npy-bad-magic.npy" &&
    stdout_has "f8_2x3.npy: npy v1.0" "mixed" && stderr_lines 1 "mixed"
run 66 "$ATTNSEC" inspect "$corpus/npy-bad-magic.npy" "$scratch/absent.npy" \
    "$fixtures/npy/f8_2x3.npy" && stderr_lines 2 "worst"
if run 66 "$ATTNSEC" inspect --json "$scratch/absent.npy" "$fixtures/npy/f8_2x3.npy"; then
    stdout_has '"status": "error"' "--json error" && stdout_has '"exit": 66' "--json error"
fi

# inspect never writes a file.
leftover=$(ls -A "$cwd")
[ -z "$leftover" ] || fail "inspect created files: $leftover"

finish
