"""Synthesize the demo spoken corpus: see d2v_fairseq/data/demo_corpus.py."""

from d2v_fairseq.data.demo_corpus import main

if __name__ == "__main__":
    main()
