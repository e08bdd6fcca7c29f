"""The one error class for a user's bad input: it names the file, the line, and what is wrong.

Every reader of user data (manifests, labels, images, text, AudioSet CSVs, decoder inputs)
raises a subclass of ``InputError``; the ``d2v`` command turns any of them into one line on
stderr and exit status 2, without a traceback.
"""

from typing import Optional


class InputError(ValueError):
    """Bad input: ``path`` (a file or config key), optional ``line`` (1-based) and ``message``.

    ``InputError("expected 2 columns", path="train.tsv", line=3)`` reads
    ``train.tsv:3: expected 2 columns``; a message that already names its place is kept as is
    (``InputError("train.tsv:3: expected 2 columns")``)."""

    def __init__(self, message: str, path: Optional[str] = None, line: Optional[int] = None):
        self.path, self.line, self.message = path, line, message
        where = "" if path is None else (f"{path}:{line}: " if line is not None else f"{path}: ")
        super().__init__(where + message)
