"""``python -m d2v_fairseq``: the ``d2v`` command."""

from .cli import console_main

if __name__ == "__main__":
    console_main()
