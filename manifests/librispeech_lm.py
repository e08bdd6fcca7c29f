"""LibriSpeech's LM text / official 4-gram to a lexicon and ARPA: see d2v_fairseq/decoding/librispeech_lm.py."""

from d2v_fairseq.decoding.librispeech_lm import main

if __name__ == "__main__":
    main()
