"""LibriSpeech from a local copy to manifests: see d2v_fairseq/data/librispeech.py."""

from d2v_fairseq.data.librispeech import main

if __name__ == "__main__":
    main()
