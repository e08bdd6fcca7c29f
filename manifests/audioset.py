"""AudioSet from a local copy to manifests and label files: see d2v_fairseq/data/audioset.py."""

from d2v_fairseq.data.audioset import main

if __name__ == "__main__":
    main()
