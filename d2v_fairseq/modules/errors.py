"""The one error class for a user's bad input: it names the file, the line, and what is wrong.

Every reader of user data (manifests, labels, images, text, AudioSet CSVs, decoder inputs)
raises a subclass of ``InputError``; the ``d2v`` command turns any of them into one line on
stderr and exit status 2, without a traceback.
"""

from typing import Optional, Sequence


class InputError(ValueError):
    """Bad input: ``path`` (a file or config key), optional ``line`` (1-based) and ``message``.

    ``InputError("expected 2 columns", path="train.tsv", line=3)`` reads
    ``train.tsv:3: expected 2 columns``; a message that already names its place is kept as is
    (``InputError("train.tsv:3: expected 2 columns")``)."""

    def __init__(self, message: str, path: Optional[str] = None, line: Optional[int] = None):
        self.path, self.line, self.message = path, line, message
        where = "" if path is None else (f"{path}:{line}: " if line is not None else f"{path}: ")
        super().__init__(where + message)


class InputErrors(InputError):
    """Several bad inputs found in one pass, reported together: the first line (``summary``,
    e.g. "train.tsv: 3 of 16 lines", then "cannot be used" and the ``hint``) says how many and
    what to do, then up to ``shown`` of them follow, one a line (``file:line: reason``).

    ``problems`` keeps every one of them (a caller may write them to a file)."""

    def __init__(self, summary: str, problems: Sequence[str], hint: str = "", shown: int = 10):
        self.problems = list(problems)
        head = f"{summary} cannot be used" + (f" ({hint})" if hint else "")
        lines = [head] + [f"  {p}" for p in self.problems[:shown]]
        if len(self.problems) > shown:
            lines.append(f"  ... and {len(self.problems) - shown} more")
        super().__init__("\n".join(lines))


def raise_all(problems: Sequence[str], single: type, several: type, summary: str, hint: str = "",
              one_hint: str = "") -> None:
    """The one way every reader reports what it found wrong: nothing for no problem, ``single``
    (an InputError class) for one, with ``one_hint`` in brackets when given, ``several`` (an
    InputErrors class) listing them all under ``summary`` and ``hint`` for more."""
    if len(problems) == 1:
        raise single(f"{problems[0]} ({one_hint})" if one_hint else problems[0])
    if problems:
        raise several(summary, problems, hint)


def first_lines(error: BaseException) -> str:
    """What the command line prints of an input error: every line of :class:`InputErrors`, the
    first line of any other."""
    text = str(error)
    if isinstance(error, InputErrors):
        return text
    return text.splitlines()[0] if text else type(error).__name__


class ModelConfigError(InputError):
    """A model config value that cannot build the model (``model config: KEY=VALUE ...``): the
    commands that build a model say it in one line, exit status 2."""
