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


def test_rows_of_each_task_kind():
    import datasets
    import numpy as np

    rows = predictions.classification_rows([0, 1], np.array([[2.0, 0.0], [0.0, 1.0]]), np.array([0, 0]))
    assert [r["prediction"] for r in rows] == [0, 1] and rows[0]["probs"] == pytest.approx([0.8808, 0.1192], abs=1e-4)
    assert predictions.regression_rows([5], np.array([[0.25]]), np.array([3.0])) == [
        {"id": 5, "gold": 3.0, "prediction": 0.25, "score": 0.25}
    ]
    # ties go to the first candidate, as the evaluation picks; several gold candidates (ReCoRD) are all listed
    scores = [[-1.0, -1.0, -3.0], [-2.0, -1.0]]
    rows = predictions.candidate_rows(["a", "b"], scores, [[0, 1, 0], [1, 0]])
    assert [(r["gold"], r["prediction"]) for r in rows] == [(1, 0), (0, 1)]
    assert rows[0]["probs"][0] == rows[0]["probs"][1] and sum(rows[1]["probs"]) == pytest.approx(1)
    assert predictions.candidate_rows([0], [[0.0, 0.0]], [[1, 1]])[0]["gold"] == [0, 1]
    assert predictions.generation_rows([9], ["Paris"], [["Paris", "paris"]]) == [
        {"id": 9, "gold": ["Paris", "paris"], "prediction": "Paris", "text": "Paris"}
    ]
    with_idx = datasets.Dataset.from_dict({"idx": [10, 11, 12], "x": ["a", "b", "c"]})
    assert predictions.example_ids(with_idx, [2, 0]) == [12, 10]
    assert predictions.example_ids(with_idx.remove_columns("idx")) == [0, 1, 2]
