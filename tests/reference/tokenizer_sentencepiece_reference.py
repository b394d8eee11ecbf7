#!/usr/bin/python3
"""Reference ids from Debian's python3-sentencepiece for qlorad's SentencePiece test.

usage: /usr/bin/python3 tokenizer_sentencepiece_reference.py MODEL INPUTS.jsonl OUT.jsonl
INPUTS: one JSON string per line. OUT: per input {"plain": sp.encode(s),
"bos": sp.encode(s, add_bos=True), "decoded": sp.decode(plain)}.
"""
import json
import sys

try:
    import sentencepiece as spm
except ImportError as e:  # fail loudly: the test must not pass without the reference
    sys.exit(f"tokenizer_sentencepiece_reference.py: python3-sentencepiece missing ({e})")


def main():
    model, inputs, out = sys.argv[1:4]
    sp = spm.SentencePieceProcessor(model_file=model)
    with open(inputs, encoding="utf-8") as f, open(out, "w", encoding="utf-8") as o:
        for line in f:
            s = json.loads(line)
            plain = sp.encode(s)
            bos = sp.encode(s, add_bos=True)
            o.write(json.dumps({"plain": plain, "bos": bos, "decoded": sp.decode(plain)}) + "\n")


if __name__ == "__main__":
    main()
