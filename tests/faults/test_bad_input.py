"""The bad-input matrix: each case through its flow's CLI, one ``error:`` line naming the bad value, exit 2,
nothing written (no storage or atlas folder, no MLflow store or run).

Flows run in this process (``main(argv)``: argparse to exit code) to keep the matrix fast; one case also runs as a
real process to pin the exit code and stderr of the script itself. Non-finite losses (divergence) are tested with
the Ray Train loop in tests/train.
"""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from dgn.data import write_split
from dgn.nets import build_caffenet
from dgn.train.checkpoint import save_checkpoint
from tests.faults.helpers import live_runs, one_line_error, run_main, run_process, tree
from tests.support.servers import free_port


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny training run (classifier and G checkpoints, judge, data) to render atlases of."""
    from dgn.atlas.demo import write_tiny_run

    return write_tiny_run(str(tmp_path_factory.mktemp("tiny-run")))


@pytest.fixture
def nothing_written(tmp_path):
    """A storage and an atlas folder that must stay absent, and no MLflow run that looks complete or alive."""
    paths = {"storage": tmp_path / "run", "out": tmp_path / "atlas"}
    yield paths
    for name, p in paths.items():
        assert not p.exists(), f"{name} {p} was written: {tree(p)}"
    assert live_runs(tmp_path / "dgn-home" / "mlflow.db") == []


def _dataset(root, tables: dict) -> str:
    for split, table in tables.items():
        os.makedirs(root / split, exist_ok=True)
        pq.write_table(table, root / split / "part-00000.parquet")
    return str(root)


def _train(capsys, storage, *args):
    return run_main(capsys, "train", "--dry-run", "--storage", str(storage), *args)


def _atlas(capsys, storage, out, *args):
    return run_main(capsys, "atlas", "--storage", str(storage), "--out", str(out), "--steps", "2", *args)


# names and indices


def test_unknown_layer(capsys, nothing_written, tiny_run):
    line = one_line_error(*_train(capsys, nothing_written["storage"], "--encoder-layer", "fc9")[::2])
    assert "'fc9'" in line and "fc6" in line and "conv5" in line
    line = one_line_error(*_atlas(capsys, tiny_run, nothing_written["out"], "--layers", "fc8,fc9")[::2])
    assert "fc9" in line and "fc8" in line


def test_unit_index_out_of_range(capsys, nothing_written, tiny_run):
    line = one_line_error(*_atlas(capsys, tiny_run, nothing_written["out"], "--layers", "fc8", "--units",
                                  "0-99")[::2])
    assert "99" in line and "fc8" in line and "0..9" in line.replace("0-9", "0..9")
    line = one_line_error(*_atlas(capsys, tiny_run, nothing_written["out"], "--layers", "fc8", "--units", "0",
                                  "--combine", "fc8:3+fc8:77")[::2])
    assert "77" in line and "fc8" in line


# datasets


def test_missing_dataset(capsys, nothing_written, tmp_path):
    line = one_line_error(*_train(capsys, nothing_written["storage"], "--data", str(tmp_path / "nowhere"))[::2])
    assert str(tmp_path / "nowhere") in line and "does not exist" in line
    line = one_line_error(*run_main(capsys, "prepare_data", "--out", str(nothing_written["storage"]), "--source",
                                    f"imagefolder:{tmp_path / 'no-folder'}")[::2])
    assert "no-folder" in line


def test_unreadable_dataset(capsys, nothing_written, tmp_path):
    for split in ("train", "val"):
        (tmp_path / "junk" / split).mkdir(parents=True)
        (tmp_path / "junk" / split / "part-00000.parquet").write_bytes(b"these bytes are not Parquet")
    line = one_line_error(*_train(capsys, nothing_written["storage"], "--data", str(tmp_path / "junk"))[::2])
    assert "junk/train/part-00000.parquet is not a readable Parquet file" in line


def test_parquet_without_required_columns(capsys, nothing_written, tmp_path, png):
    t = pa.table({"image": [png] * 4, "label": [0, 1, 0, 1]})
    uri = _dataset(tmp_path / "nocols", {"train": t, "val": t})
    line = one_line_error(*_train(capsys, nothing_written["storage"], "--data", uri)[::2])
    assert "nocols/train/part-00000.parquet is missing column(s) label_name" in line and "image" in line


def test_undecodable_images(capsys, nothing_written, tmp_path):
    rows = [{"image": b"GIF89a-but-not-really", "label": i % 2, "label_name": f"c{i % 2}"} for i in range(8)]
    uri = str(tmp_path / "undecodable")
    write_split(rows, uri, "train")
    write_split(rows, uri, "val")
    line = one_line_error(*_train(capsys, nothing_written["storage"], "--data", uri)[::2])
    assert "undecodable/train/part-00000.parquet row 0 holds an image that cannot be decoded" in line


# checkpoints


def test_wrong_architecture_checkpoint(capsys, nothing_written, tmp_path):
    # a classifier checkpoint whose weights are the small preset's while its config says the 227-px caffenet
    from dgn.train.classifier import classifier_checkpoint

    ck = classifier_checkpoint(build_caffenet("small"), None, epoch=1, class_names=[str(i) for i in range(10)])
    ck["config"] = build_caffenet("caffenet", num_classes=10).config.to_dict()
    path = tmp_path / "wrong.pt"
    save_checkpoint(ck, str(path))
    line = one_line_error(*_train(capsys, nothing_written["storage"], "--encoder-weights", str(path))[::2])
    assert str(path) in line and "does not fit" in line
    # a plain state dict of some other network
    torch.save({"features.0.weight": torch.zeros(3, 3)}, tmp_path / "other.pth")
    line = one_line_error(*_train(capsys, nothing_written["storage"], "--encoder-weights",
                                  str(tmp_path / "other.pth"))[::2])
    assert "other.pth" in line


# services


def test_unreachable_mlflow_server(capsys, nothing_written, monkeypatch, tiny_run):
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    line = one_line_error(*_train(capsys, nothing_written["storage"])[::2])
    assert url in line and "unreachable" in line
    line = one_line_error(*_atlas(capsys, tiny_run, nothing_written["out"], "--layers", "fc8", "--units", "0")[::2])
    assert url in line and "unreachable" in line


def test_unreachable_s3_endpoint(capsys, nothing_written, monkeypatch):
    endpoint = f"http://127.0.0.1:{free_port()}"
    for k, v in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(k, v)
    line = one_line_error(*run_main(capsys, "prepare_data", "--out", "s3://dgn-test/ds", "--n-train", "10",
                                    "--n-val", "10")[::2])
    assert f"cannot reach the S3 endpoint {endpoint} for s3://dgn-test/ds" in line
    line = one_line_error(*_train(capsys, nothing_written["storage"], "--data", "s3://dgn-test/ds")[::2])
    assert f"cannot reach the S3 endpoint {endpoint}" in line


def test_real_process_exit_code_and_stderr(tmp_path):
    """The same contract from the script itself: exit status 2, one stderr line, nothing written."""
    r = run_process("train", "--dry-run", "--storage", str(tmp_path / "run"), "--encoder-layer", "pool9",
                    env={**os.environ})
    assert one_line_error(r.returncode, r.stderr).startswith("error: unknown layer 'pool9'")
    assert not (tmp_path / "run").exists()


@pytest.fixture
def png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


# file system: a location under a file, in every flow (one line naming it, no traceback)


def test_location_under_a_file_in_every_flow(capsys, nothing_written, tmp_path, tiny_run):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    under = str(blocker / "x")
    cases = [("train", ["--dry-run", "--storage", under], "storage"),
             ("atlas", ["--storage", tiny_run, "--out", under, "--no-tracking"], "atlas output"),
             ("sweep_layers", ["--dry-run", "--storage", under, "--no-tracking"], "storage"),
             ("prepare_data", ["--out", under, "--n-train", "10", "--n-val", "10"], "dataset location")]
    for flow_name, argv, what in cases:
        line = one_line_error(*run_main(capsys, flow_name, *argv)[::2])
        assert line == f"error: {what} {under!r} cannot be a folder: {blocker} is a file; give a directory or s3:// " \
                       "prefix.", (flow_name, line)
    assert blocker.read_text() == "not a folder"


def test_os_error_from_deep_inside_is_one_line(capsys):
    """What no check foresaw (here: a folder where a file is read) still reaches the user as one line."""
    from dgn.cli import run_flow

    def work() -> int:
        open(os.getcwd()).read()  # IsADirectoryError
        return 0

    code = run_flow(work)
    line = one_line_error(code, capsys.readouterr().err)
    assert line == f"error: Is a directory: {os.getcwd()!r}"
