import gzip

import pytest

from beft import predictions
from beft.errors import BeftError


def test_round_trip_is_compressed_and_deterministic(tmp_path):
    rows = [{"id": 3, "gold": 1, "prediction": 0, "probs": [0.6, 0.4]}, {"id": 7, "gold": 0, "prediction": 0}]
    rel = predictions.write(tmp_path, "validation", rows)
    assert rel == "predictions/validation.jsonl.gz"
    first = (tmp_path / rel).read_bytes()
    assert gzip.decompress(first).decode().count("\n") == 2
    assert predictions.read(tmp_path, rel) == rows
    predictions.write(tmp_path, "validation", rows)
    assert (tmp_path / rel).read_bytes() == first


def test_missing_or_corrupt_file_names_the_path(tmp_path):
    with pytest.raises(BeftError, match="missing"):
        predictions.read(tmp_path, "predictions/test.jsonl.gz")
    (tmp_path / "predictions").mkdir()
    (tmp_path / "predictions/test.jsonl.gz").write_bytes(b"not gzip")
    with pytest.raises(BeftError, match="unreadable"):
        predictions.read(tmp_path, "predictions/test.jsonl.gz")
