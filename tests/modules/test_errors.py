"""The one input-error class and the readers' errors that derive from it."""

import pytest

from d2v_fairseq.data.audioset import AudioSetError
from d2v_fairseq.data.images import ImageDataError
from d2v_fairseq.data.manifest import ManifestError
from d2v_fairseq.data.text import TextInputError
from d2v_fairseq.decoding.ctc import DecodingInputError
from d2v_fairseq.interop import NotExportable
from d2v_fairseq.modules.errors import InputError


def test_message_names_file_and_line():
    error = InputError("expected 2 columns", path="train.tsv", line=3)
    assert str(error) == "train.tsv:3: expected 2 columns"
    assert (error.path, error.line, error.message) == ("train.tsv", 3, "expected 2 columns")
    assert str(InputError("empty", path="a.txt")) == "a.txt: empty"
    assert str(InputError("a.txt:1: empty")) == "a.txt:1: empty"


@pytest.mark.parametrize("cls", [AudioSetError, ImageDataError, ManifestError, TextInputError, DecodingInputError,
                                 NotExportable])
def test_every_reader_error_is_an_input_error(cls):
    assert issubclass(cls, InputError) and issubclass(cls, ValueError)
