"""Raw text to binarized masked_lm input: see d2v_fairseq/data/text.py."""

from d2v_fairseq.data.text import main

if __name__ == "__main__":
    main()
