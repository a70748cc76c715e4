#!/usr/bin/python3
"""make_text.py - a word-level English corpus for attnsec: six books of the
King James Version of the Bible.

Source: Debian bible-kjv-text 4.38 (the text) read through the bible
program of Debian bible-kjv 4.38 (apt-get install --no-install-recommends
bible-kjv); the Debian copyright file of bible-kjv grants unrestricted use
("Users may copy, modify or distribute this file at will"), and the KJV
text itself is in the public domain outside the United Kingdom (see
datasets/README.md for the UK Crown-patent caveat).

Books: Genesis, Exodus, Matthew (the training text) and Mark, John (the
test text)
-- about 0.7 MB.  Tokenisation: lower case; a word is [a-z]+ with inner
apostrophes ("lord's"); each of . , ; : ? ! is a token; everything else
separates tokens.  Vocabulary: id 0 is "<unk>", then the 2048 most
frequent tokens of the training text (ties broken alphabetically).

Writes to datasets/text/:
    kjv.txt            the five books, one verse per line: "Book c:v<TAB>text"
    vocab.txt          2049 lines, line i is the token of id i
    train_tokens.npy   uint16 (N_train,)  token ids of Genesis, Exodus, Matthew
    test_tokens.npy    uint16 (N_test,)   token ids of Mark and John

Usage: /usr/bin/python3 datasets/gen/make_text.py [OUTDIR]
"""
import collections
import os
import re
import subprocess
import sys

import numpy as np

TRAIN = [("gen", "Genesis", 50), ("ex", "Exodus", 40), ("matt", "Matthew", 28)]
TEST = [("mark", "Mark", 16), ("john", "John", 21)]
VOCAB = 2048
TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)*|[.,;:?!]")


def verses(code, book, nchap):
    """[(ref, text)] from `bible -l0 book1:1-bookN:999`."""
    out = subprocess.run(["bible", "-l0", "%s1:1-%s%d:999" % (code, code, nchap)],
                         check=True, capture_output=True, text=True).stdout
    res, chap = [], None
    for line in out.splitlines():
        m = re.match(r"^%s (\d+)$" % book, line.strip())
        if m:
            chap = int(m.group(1))
            continue
        m = re.match(r"^\s*(\d+) (.*)$", line)
        if m and chap is not None:
            res.append(("%s %d:%s" % (book, chap, m.group(1)), m.group(2).strip()))
    assert res, book
    return res


def tokenize(text):
    return TOKEN.findall(text.lower())


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "datasets/text"
    os.makedirs(out, exist_ok=True)
    train, test = [], []
    for books, dst in ((TRAIN, train), (TEST, test)):
        for code, book, n in books:
            dst += verses(code, book, n)
    with open(os.path.join(out, "kjv.txt"), "w") as f:
        for ref, text in train + test:
            f.write("%s\t%s\n" % (ref, text))
    counts = collections.Counter(t for _, v in train for t in tokenize(v))
    words = sorted(counts, key=lambda w: (-counts[w], w))[:VOCAB]
    vocab = ["<unk>"] + words
    with open(os.path.join(out, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab) + "\n")
    ids = {w: i for i, w in enumerate(vocab)}
    for name, vs in (("train", train), ("test", test)):
        toks = [ids.get(t, 0) for _, v in vs for t in tokenize(v)]
        arr = np.array(toks, dtype=np.uint16)
        np.save(os.path.join(out, name + "_tokens.npy"), arr)
        print("%s: %d verses, %d tokens, %.2f%% unknown" % (
            name, len(vs), len(arr), 100.0 * float((arr == 0).mean())))


if __name__ == "__main__":
    main()
