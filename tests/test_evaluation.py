"""Continual-learning metrics on hand-built matrices.

Every expected value below was worked out by hand from the matrix above
it and is written as a literal number.
"""

import json
import math

import numpy as np
import pytest

from keras_grown.evaluation import AccuracyMatrix

NAN = float("nan")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Three tasks that forget a little.
THREE = [
    [0.90, NAN, NAN],
    [0.85, 0.80, NAN],
    [0.80, 0.75, 0.70],
]

# Four tasks where task 0 first improves (positive backward transfer) and
# later drops: BWT is 0 while forgetting is not.
FOUR = [
    [0.60, NAN, NAN, NAN],
    [0.70, 0.80, NAN, NAN],
    [0.65, 0.90, 0.50, NAN],
    [0.55, 0.85, 0.50, 0.95],
]


def approx(value):
    return pytest.approx(value, abs=1e-12)


@pytest.fixture
def three():
    matrix = AccuracyMatrix(3, task_names=["a", "b", "c"])
    matrix.record_row(0, [0.90])
    matrix.record_row(1, [0.85, 0.80])
    matrix.record(2, 0, 0.80)
    matrix.record(2, 1, 0.75)
    matrix.record(2, 2, 0.70)
    return matrix


def test_three_task_metrics(three):
    # ACC = (0.80 + 0.75 + 0.70) / 3
    assert three.average_accuracy() == approx(0.75)
    # a_0 = 0.90, a_1 = (0.85 + 0.80) / 2, a_2 = 0.75
    assert three.step_average_accuracy() == [approx(0.90), approx(0.825), approx(0.75)]
    # BWT = ((0.80 - 0.90) + (0.75 - 0.80)) / 2
    assert three.backward_transfer() == approx(-0.075)
    # f_0 = max(0.90, 0.85) - 0.80, f_1 = 0.80 - 0.75
    assert three.forgetting() == [approx(0.10), approx(0.05)]
    assert three.average_forgetting() == approx(0.075)
    assert three.num_filled == 3


def test_four_task_metrics_forgetting_uses_the_best_earlier_accuracy():
    matrix = AccuracyMatrix.from_values(FOUR)
    # ACC = (0.55 + 0.85 + 0.50 + 0.95) / 4 = 2.85 / 4
    assert matrix.average_accuracy() == approx(0.7125)
    # a_2 = (0.65 + 0.90 + 0.50) / 3 = 2.05 / 3
    assert matrix.step_average_accuracy() == [
        approx(0.60),
        approx(0.75),
        approx(0.6833333333333333),
        approx(0.7125),
    ]
    # BWT = ((0.55 - 0.60) + (0.85 - 0.80) + (0.50 - 0.50)) / 3
    assert matrix.backward_transfer() == approx(0.0)
    # f_0 = max(0.60, 0.70, 0.65) - 0.55; f_1 = max(0.80, 0.90) - 0.85; f_2 = 0.50 - 0.50
    assert matrix.forgetting() == [approx(0.15), approx(0.05), approx(0.0)]
    assert matrix.average_forgetting() == approx(0.06666666666666667)


def test_metrics_read_only_the_rows_filled_so_far():
    matrix = AccuracyMatrix(4)
    matrix.record_row(0, [0.60])
    matrix.record_row(1, [0.70, 0.80])
    matrix.record(2, 0, 0.65)  # row 2 is only partly filled: ignored
    assert matrix.num_filled == 2
    # ACC = (0.70 + 0.80) / 2; BWT = 0.70 - 0.60; f_0 = 0.60 - 0.70
    assert matrix.average_accuracy() == approx(0.75)
    assert matrix.backward_transfer() == approx(0.10)
    assert matrix.forgetting() == [approx(-0.10)]
    assert matrix.step_average_accuracy() == [approx(0.60), approx(0.75)]


def test_one_task_has_no_transfer_and_no_forgetting():
    matrix = AccuracyMatrix(5)
    matrix.record(0, 0, 0.42)
    assert matrix.average_accuracy() == approx(0.42)
    assert matrix.backward_transfer() == 0.0
    assert matrix.forgetting() == []
    assert matrix.average_forgetting() == 0.0


def test_zero_forgetting_reads_exactly_zero():
    # What GROWN promises: every column stays where it was.
    matrix = AccuracyMatrix.from_values([[0.9, NAN], [0.9, 0.8]])
    assert matrix.backward_transfer() == 0.0
    assert matrix.forgetting() == [0.0]


def test_columns_beyond_the_diagonal_are_ignored_by_metrics():
    matrix = AccuracyMatrix(2)
    matrix.record_row(0, [0.9, 0.1])  # accuracy on task 1 before learning it
    matrix.record_row(1, [0.8, 0.7])
    assert matrix.values[0, 1] == 0.1
    assert matrix.average_accuracy() == approx(0.75)
    assert matrix.backward_transfer() == approx(-0.10)


def test_empty_matrix_says_what_to_record():
    matrix = AccuracyMatrix(3)
    assert matrix.num_filled == 0
    with pytest.raises(ValueError, match=r"Call record\(0, 0, accuracy\) first"):
        matrix.average_accuracy()
    with pytest.raises(ValueError, match="at least one filled row"):
        matrix.backward_transfer()
    assert matrix.summary()["average_accuracy"] is None
    assert "No task learned yet." in matrix.to_markdown()
    assert np.isnan(matrix.values).all() and matrix.values.shape == (3, 3)


def test_values_are_a_read_only_view(three):
    with pytest.raises(ValueError):
        three.values[0, 0] = 0.0


def test_markdown_table(three):
    three.record_model_size(0, 0.3)
    three.record_model_size(2, 1.05)
    expected = "\n".join(
        [
            "| | a | b | c |",
            "| --- | ---: | ---: | ---: |",
            "| after task 0 | 90.00 |  |  |",
            "| after task 1 | 85.00 | 80.00 |  |",
            "| after task 2 | 80.00 | 75.00 | 70.00 |",
            "",
            "After 3 of 3 tasks: average accuracy 75.00 %, BWT -7.50 %, "
            "average forgetting 7.50 %, model size 1.05x.",
        ]
    )
    assert three.to_markdown() == expected


def test_default_task_names_and_name_count():
    assert AccuracyMatrix(2).task_names == ["task_0", "task_1"]
    with pytest.raises(ValueError, match=r"one name per task: expected 3, received 2"):
        AccuracyMatrix(3, task_names=["a", "b"])
    with pytest.raises(
        ValueError, match="num_tasks must be a positive integer. Received: num_tasks=0"
    ):
        AccuracyMatrix(0)


def test_model_size_and_time_curves(three):
    three.record_model_size(0, 0.3)
    three.record_model_size(2, 1.1)
    assert three.model_size == [0.3, None, 1.1]
    three.record_time(0, 12.5)
    assert three.time_per_task == [12.5]
    three.time_per_task = [1.0, 2.0, 3.0]  # learn() assigns the whole list
    assert three.to_dict()["time_per_task"] == [1.0, 2.0, 3.0]


def test_json_round_trip(three, tmp_path):
    three.record_model_size(0, 0.25)
    three.record_model_size(1, 0.5)
    three.record_time(1, 3.5)
    path = three.to_json(tmp_path / "matrix.json")
    raw = json.loads(path.read_text())
    assert raw["accuracy"][0] == [0.9, None, None]
    assert raw["summary"]["backward_transfer"] == approx(-0.075)
    again = AccuracyMatrix.from_json(path)
    np.testing.assert_array_equal(again.values, three.values)  # NaN where NaN
    assert again.task_names == ["a", "b", "c"]
    assert again.model_size == [0.25, 0.5]
    assert again.time_per_task == [None, 3.5]
    assert again.to_dict() == three.to_dict()


def test_dict_round_trip_keeps_unfilled_cells():
    matrix = AccuracyMatrix.from_values(FOUR)
    config = matrix.to_dict()
    assert config["accuracy"][1] == [0.7, 0.8, None, None]
    np.testing.assert_array_equal(AccuracyMatrix.from_dict(config).values, matrix.values)
    with pytest.raises(ValueError, match="the key 'accuracy' is missing"):
        AccuracyMatrix.from_dict({"num_tasks": 2})


def test_csv_round_trip(three, tmp_path):
    three.record_model_size(2, 1.05)
    three.record_time(0, 7.25)
    path = three.to_csv(tmp_path / "matrix.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "after_task,a,b,c,model_size,time_per_task"
    assert lines[1] == "0,0.9,,,,7.25"
    assert lines[3] == "2,0.8,0.75,0.7,1.05,"
    again = AccuracyMatrix.from_csv(path)
    np.testing.assert_array_equal(again.values, three.values)
    assert again.task_names == ["a", "b", "c"]
    assert again.model_size == [None, None, 1.05]
    assert again.time_per_task == [7.25]
    (tmp_path / "other.csv").write_text("x,y\n1,2\n")
    with pytest.raises(ValueError, match="not a CSV written by AccuracyMatrix.to_csv"):
        AccuracyMatrix.from_csv(tmp_path / "other.csv")


def test_plots_are_png_files(three, tmp_path):
    three.record_model_size(0, 0.3)
    three.record_model_size(1, 0.6)
    for path in (
        three.plot_heatmap(tmp_path / "heatmap.png"),
        three.plot_curves(tmp_path / "curves.png"),
    ):
        data = path.read_bytes()
        assert data[:8] == PNG_SIGNATURE
        assert len(data) > 5_000


def test_plot_curves_needs_a_filled_row(tmp_path):
    with pytest.raises(ValueError, match="at least one filled row"):
        AccuracyMatrix(2).plot_curves(tmp_path / "curves.png")
    assert not (tmp_path / "curves.png").exists()


def test_record_out_of_range_is_an_index_error():
    matrix = AccuracyMatrix(3)
    with pytest.raises(
        IndexError,
        match=r"i must be a task index in 0..2 \(the matrix has 3 tasks\). Received: i=3",
    ):
        matrix.record(3, 0, 0.5)
    with pytest.raises(IndexError, match="Received: j=-1"):
        matrix.record(0, -1, 0.5)
    with pytest.raises(IndexError, match="Received: i=5"):
        matrix.record_model_size(5, 1.0)


def test_accuracy_outside_unit_interval_is_refused():
    matrix = AccuracyMatrix(3)
    with pytest.raises(ValueError, match=r"accuracy must be a fraction in \[0, 1\]. Received: 1.5"):
        matrix.record(0, 0, 1.5)
    with pytest.raises(ValueError, match="percentage: divide by 100"):
        matrix.record(0, 0, 95.0)
    with pytest.raises(ValueError, match="Received: -0.1"):
        matrix.record(0, 0, -0.1)
    with pytest.raises(ValueError, match="Received: nan"):
        matrix.record(0, 0, math.nan)
    with pytest.raises(TypeError, match="must be a number in"):
        matrix.record(0, 0, "high")
    assert np.isnan(matrix.values).all()


def test_record_row_checks_everything_before_writing():
    matrix = AccuracyMatrix(3)
    with pytest.raises(ValueError, match=r"record_row\(1, ...\)\[1\]: accuracy must be a fraction"):
        matrix.record_row(1, [0.5, 2.0])
    assert np.isnan(matrix.values).all()
    with pytest.raises(
        ValueError, match=r"accuracies on tasks 0..1: between 2 and 3 values. Received 1"
    ):
        matrix.record_row(1, [0.5])
    with pytest.raises(ValueError, match=r"model size after task 0 must be a finite number >= 0"):
        matrix.record_model_size(0, -1)


def test_accepts_numpy_and_tensor_scalars():
    import tensorflow as tf

    matrix = AccuracyMatrix(1)
    matrix.record(0, 0, np.float32(0.5))
    assert matrix.average_accuracy() == 0.5
    matrix.record(0, 0, tf.constant(0.25))
    assert matrix.average_accuracy() == 0.25
