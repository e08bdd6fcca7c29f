"""GLUE from a local copy to sentence_prediction input: see d2v_fairseq/data/glue.py."""

from d2v_fairseq.data.glue import main

if __name__ == "__main__":
    main()
