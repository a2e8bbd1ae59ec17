"""flows/train.py end to end on Ray Train (its fast path), resume after a crash, divergence, bad input.

The runs join one private ``ray start --head`` cluster (RAY_ADDRESS) so that each does not pay for
starting Ray; MLflow is the default local store under the test's private DGN_HOME.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from tests.faults.helpers import help_text, one_line_error, run_main
from tests.support.servers import free_port
from tests.train.ray_head import RAY_ENV, ray_head

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ray_address():
    with ray_head(2, dashboard=False) as (address, _):
        yield address


def _run(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, str(ROOT / "flows" / "train.py"), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, **RAY_ENV, **(env or {})})


def _mlflow(experiment="dgn-train"):
    from mlflow.tracking import MlflowClient

    from dgn.tracking import tracking_uri

    client = MlflowClient(tracking_uri())
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id]) if exp else []


def _steps(client, run_id, key):
    return [m.step for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def test_help_exits_zero(capsys):
    code, out = help_text(capsys, "train")  # in this process; tests/faults checks a real process's exit codes
    assert code == 0
    for flag in ("--encoder-layer", "--workers", "--encoder-weights", "--run-name", "ray job submit"):
        assert flag in out


def _error_line(r):
    """A failure during the run: exit 2, one 'error:' line and it is the last; no traceback (logs may precede it)."""
    assert r.returncode == 2, r.stderr[-3000:]
    lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
    assert [l for l in lines if l.startswith("error: ")] == [lines[-1]], r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    return lines[-1]


@pytest.mark.fresh_mlflow_store  # the check below: not even an MLflow store is created
def test_bad_values_fail_before_any_work(tmp_path, capsys, monkeypatch):
    """Each bad value: one sentence, exit 2, nothing written. The flow's main runs in this process (argparse to exit
    code, as ``python flows/train.py`` runs it; tests/faults/test_bad_input.py checks a real process's exit too)."""
    storage = tmp_path / "run"

    def line(*args: str) -> str:
        return one_line_error(*run_main(capsys, "train", "--dry-run", "--storage", str(storage), *args)[::2])

    assert "'fc9'" in line("--encoder-layer", "fc9") and "fc6" in line("--encoder-layer", "fc9")
    assert "gan-steps must be ≥ 0" in line("--gan-steps", "-1")
    assert "missing" in line("--data", str(tmp_path / "missing"))
    assert "workers must be ≥ 1" in line("--workers", "0")
    assert "batch-size 32 must be a multiple of workers 3" in line("--workers", "3")
    bad_weights = line("--encoder-weights", str(tmp_path / "no.pt"))
    assert "no.pt" in bad_weights and "does not exist" in bad_weights
    bad = tmp_path / "bad.yaml"
    bad.write_text("gan:\n  w_pixel: 1\n")
    assert "w_pixel" in line("--config", str(bad))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    assert "unreachable" in line()
    assert not storage.exists(), "nothing is written when the input is bad"
    assert not (Path(os.environ["DGN_HOME"]) / "mlflow.db").exists(), "no MLflow run is created"


def test_crash_then_same_command_continues_in_the_same_run(tmp_path, ray_address):
    storage = tmp_path / "crashy"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("classifier_steps: 9\nclassifier_checkpoints: 3\nmax_failures: 0\natlas_units: none\n")
    args = ("--dry-run", "--storage", str(storage), "--config", str(cfg))
    env = {"RAY_ADDRESS": ray_address}
    # the worker dies in classifier checkpoint 2 and no restart is allowed: the job fails after epoch 1
    r = _run(*args, env={**env, "DGN_TEST_WORKER_EXIT": "classifier:2:0"})
    assert _error_line(r).startswith("error: training (classifier+judge+generator) failed on Ray Train")
    assert sorted(p.name for p in (storage / "classifier").iterdir()) == ["epoch=0001.pt"]
    client, runs = _mlflow()
    assert len(runs) == 1 and runs[0].info.status == "FAILED"
    run_id = runs[0].info.run_id

    r = _run(*args, env=env)  # the same command again
    assert r.returncode == 0, r.stderr[-3000:]
    assert "classifier E: resuming at checkpoint 2" in r.stdout and "continuing run 'crashy'" in r.stdout
    client, runs = _mlflow()
    assert [x.info.run_id for x in runs] == [run_id], "the same MLflow run, not a second one"
    assert runs[0].info.status == "FINISHED"
    assert _steps(client, run_id, "classifier_val_acc") == [1, 2, 3]  # each checkpoint once
    assert sorted(p.name for p in (storage / "classifier").iterdir()) == [f"epoch={e:04d}.pt" for e in (1, 2, 3)]


def test_divergence_stops_with_one_line_and_keeps_good_checkpoints_on_s3(tmp_path, ray_address, s3_bucket):
    storage = f"s3://{s3_bucket}/runs/div"  # checkpoints and data on a moto S3 server
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("gan:\n  lr: 1.0e+10\n  w_adv: 1.0\n  warmup_steps: 0\n")  # D's logits overflow at step 2
    r = _run("--dry-run", "--storage", storage, "--config", str(cfg), env={"RAY_ADDRESS": ray_address})
    line = _error_line(r)
    assert "generator training diverged before step 6" in line and "G's loss is nan" in line, line
    from dgn.storage import RunLayout

    layout = RunLayout(storage)
    assert layout.epochs("classifier") == [1] and layout.epochs("judge") == [1]  # good ones stay
    assert layout.epochs("generator/fc6") == []
    _, runs = _mlflow()
    assert len(runs) == 1 and runs[0].info.status == "FAILED"


def test_paper_preset_with_encoder_weights_on_a_local_ray(tmp_path, capsys):
    # E from a project classifier checkpoint: the classifier stage is skipped
    line = one_line_error(*run_main(capsys, "train", "--dry-run", "--storage", str(tmp_path / "first"),
                                    "--gan-steps", "0")[::2])
    assert "gan-steps and judge-steps must be ≥ 1 for a training run; got 0 and 6" in line
    from dgn.data import read_meta, write_synthetic
    from dgn.nets import build_caffenet
    from dgn.train.checkpoint import save_checkpoint
    from dgn.train.classifier import classifier_checkpoint

    data = str(tmp_path / "data")
    write_synthetic(data, n_train=200, n_val=100, seed=0, image_size=64)
    meta = read_meta(data)
    weights = save_checkpoint(classifier_checkpoint(build_caffenet("small", num_classes=meta.num_classes,
                                                                   image_size=64), epoch=1), str(tmp_path / "e.pt"))
    storage = tmp_path / "paper"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # the embedded path: a local Ray is started
    r = subprocess.run([sys.executable, str(ROOT / "flows" / "train.py"), "--dry-run", "--preset", "paper", "--storage",
                        str(storage), "--data", data, "--encoder-weights", weights, "--num-cpus", "2",
                        "--atlas-units", "none"],
                       capture_output=True, text=True, timeout=600, cwd=ROOT, env={**env, **RAY_ENV})
    assert r.returncode == 0, r.stderr[-3000:]
    assert not (storage / "classifier").exists()
    assert "training judge, generator on 2 Ray Train worker(s) × 1 CPU" in r.stdout
    q = json.loads((storage / "quality.json").read_text())
    assert q["config"]["gan"]["reduction"] == "caffe" and q["config"]["gan"]["w_adv"] == 100.0
    assert q["config"]["am"]["lr"] == 8.0
    assert q["config"]["encoder_weights"] == weights


def test_run_name_of_another_storage_is_refused(tmp_path, capsys):
    from dgn.tracking import open_run

    with open_run(experiment="dgn-train", run_name="shared", tags={"dgn.storage": "/elsewhere"}):
        pass
    line = one_line_error(*run_main(capsys, "train", "--dry-run", "--storage", str(tmp_path / "run"), "--run-name",
                                    "shared")[::2])
    assert "'shared' already belongs to storage '/elsewhere'" in line
    assert not (tmp_path / "run").exists()


def test_corrupt_image_inside_a_worker_is_not_retried(tmp_path, ray_address):
    """A user error that only a Ray Train worker can see (one undecodable PNG deep in the split) ends the job at once:
    its sentence, no worker-group restart, no checkpoint, the MLflow run FAILED."""
    import pyarrow.parquet as pq

    from dgn.data import write_synthetic

    data = tmp_path / "data"
    write_synthetic(str(data), n_train=200, n_val=100, seed=0, image_size=64)
    (part,) = sorted((data / "train").glob("*.parquet"))
    table = pq.read_table(part)
    images = table.column("image").to_pylist()
    images[150] = b"\x89PNG\r\n\x1a\n-truncated"  # a PNG header, then nothing decodable
    pq.write_table(table.set_column(table.schema.get_field_index("image"), "image",
                                    pa.array(images, type=table.schema.field("image").type)), part)
    storage = tmp_path / "run"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("max_failures: 2\n")
    r = _run("--dry-run", "--storage", str(storage), "--data", str(data), "--config", str(cfg),
             env={"RAY_ADDRESS": ray_address})
    line = _error_line(r)
    assert "row 150 holds an image that cannot be decoded" in line, line
    assert "restart" not in line and "resuming" not in r.stdout
    assert not (storage / "classifier").exists() and not (storage / "quality.json").exists()
    _, runs = _mlflow()
    assert len(runs) == 1 and runs[0].info.status == "FAILED"


def test_a_classifier_that_does_not_learn_stops_the_job(tmp_path, ray_address):
    """Labels that carry nothing (shuffled): E ends at chance, the job stops with that figure before the judge and G,
    the run is FAILED; the same command again stops at once, not training the next stages on the stuck E."""
    import pyarrow.parquet as pq

    from dgn.data import write_synthetic

    data = tmp_path / "data"
    write_synthetic(str(data), n_train=200, n_val=100, seed=0, image_size=64)
    for split in ("train", "val"):
        for part in sorted((data / split).glob("*.parquet")):
            t = pq.read_table(part)
            order = torch_perm(t.num_rows, seed=1 if split == "train" else 2)  # images shuffled against labels
            idx = t.schema.get_field_index("image")
            pq.write_table(t.set_column(idx, "image", t.column("image").take(pa.array(order))), part)
    storage = tmp_path / "run"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("learned_factor: 1.5\n")
    args = ("--dry-run", "--storage", str(storage), "--data", str(data), "--config", str(cfg))
    line = _error_line(_run(*args, env={"RAY_ADDRESS": ray_address}))
    assert line.startswith("error: the classifier E did not learn: val acc 0.") and "× chance (0.100)" in line, line
    assert (storage / "classifier" / "epoch=0001.pt").is_file()
    assert not (storage / "judge").exists() and not (storage / "generator").exists()
    _, runs = _mlflow()
    assert len(runs) == 1 and runs[0].info.status == "FAILED"
    again = _run(*args, env={"RAY_ADDRESS": ray_address})
    assert _error_line(again) == line
    assert "training " not in again.stdout and not (storage / "judge").exists()


def torch_perm(n: int, seed: int) -> list[int]:
    import torch

    return torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
