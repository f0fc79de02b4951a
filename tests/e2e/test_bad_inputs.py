"""The files and setups users really have: each case breaks a good folder or setup in one way and
checks the exact message (file, line), that nothing half-written is left, or that it just works."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from pipeline import DEMO_MODEL_DIR
from pipeline.core.job_folder import epoch_ms
from tests.conftest import RunCli, free_port

pytestmark = pytest.mark.slow


def copy_dataset(demo_data_dir: Path, target: Path, dev_lines: int = 300) -> Path:
    target.mkdir(parents=True)
    shutil.copy(demo_data_dir / "label.txt", target / "label.txt")
    dev = (demo_data_dir / "dev.txt").read_text(encoding="utf-8").splitlines()[:dev_lines]
    (target / "dev.txt").write_text("\n".join(dev) + "\n", encoding="utf-8")
    shutil.copy(demo_data_dir / "data.txt", target / "data.txt")
    return target


def overrides_for(model: Path, data: Path, tmp_path: Path) -> list[str]:
    """Paths quoted as Hydra's override grammar needs for spaces and other characters."""
    return [
        f'model.path_prefix="{model / "export" / "float32"}"',
        f'model.name_or_path="{model / "tokenizer"}"',
        f'dataset.dir="{data}"',
        f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
        "mlflow.experiment_name=bad-inputs",
    ]


def one_error_line(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr[-3000:]
    return errors[0]


def test_windows_files_give_the_same_results(
    run_cli: RunCli, tiny_model: Path, demo_data_dir: Path, tmp_path: Path
) -> None:
    clean = copy_dataset(demo_data_dir, tmp_path / "clean")
    windows = copy_dataset(demo_data_dir, tmp_path / "windows")
    for name in ("label.txt", "dev.txt", "data.txt"):  # Notepad / Excel "CSV UTF-8": BOM and CRLF
        text = (windows / name).read_text(encoding="utf-8").replace("\n", "\r\n")
        (windows / name).write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    results = {}
    for data in (clean, windows):
        result = run_cli(*overrides_for(tiny_model, data, tmp_path), f"hydra.run.dir=job-{data.name}")
        assert result.returncode == 0, result.stderr[-3000:]
        metrics = json.loads((tmp_path / f"job-{data.name}" / "metrics.json").read_text())
        predictions = (tmp_path / f"job-{data.name}" / "predictions.jsonl").read_text(encoding="utf-8")
        results[data.name] = (metrics["accuracy"], metrics["n_samples"], predictions)
    assert results["windows"] == results["clean"]


def test_paths_with_spaces_and_chinese_work_in_every_stage(
    run_cli: RunCli, tiny_model: Path, demo_data_dir: Path, tmp_path: Path
) -> None:
    data = copy_dataset(demo_data_dir, tmp_path / "数据" / "我的 数据")
    model = tmp_path / "模型 目录" / "tiny model"
    shutil.copytree(tiny_model, model)
    args = overrides_for(model, data, tmp_path)
    result = run_cli(*args, 'hydra.run.dir="输出/评估 一"')
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "输出" / "评估 一" / "metrics.json").read_text())["n_samples"] == 300
    checkpoint = run_cli(
        *args,
        "model.weights=checkpoint",
        f'model.checkpoint="{model / "checkpoint"}"',
        'hydra.run.dir="输出/二"',
    )
    assert checkpoint.returncode == 0, checkpoint.stderr[-3000:]
    predicted = run_cli(
        *args,
        "mode=predict",
        f'predict.input="{data / "data.txt"}"',
        f'predict.output="{tmp_path / "预测 结果"}"',
        'hydra.run.dir="输出/三"',
    )
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert (tmp_path / "预测 结果" / "_SUCCESS").is_file()


def test_bad_data_txt_is_found_before_any_conversion(
    run_cli: RunCli, tiny_model: Path, demo_data_dir: Path, tmp_path: Path
) -> None:
    data = copy_dataset(demo_data_dir, tmp_path / "data")
    (data / "data.txt").write_bytes(b"fine\n\xff\xfe\n")
    cache = tmp_path / "fresh-cache"
    result = run_cli(
        *overrides_for(tiny_model, data, tmp_path), "hydra.run.dir=job", env={"ERNIE_ONNX_CACHE": str(cache)}
    )
    assert result.returncode == 2
    assert one_error_line(result.stderr) == f"error: {data / 'data.txt'}:2: not valid UTF-8 text"
    assert not (cache / "onnx").exists(), "the model was converted before the data was checked"
    assert json.loads((tmp_path / "job" / "job_status.json").read_text())["status"] == "FAILED"


def test_tokenizer_of_another_model_is_named_with_both_sizes(
    run_cli: RunCli, tiny_model: Path, demo_data_dir: Path, tmp_path: Path
) -> None:
    data = copy_dataset(demo_data_dir, tmp_path / "data")
    args = [*overrides_for(tiny_model, data, tmp_path), f"model.name_or_path={DEMO_MODEL_DIR / 'tokenizer'}"]
    result = run_cli(*args, "hydra.run.dir=job")
    assert result.returncode == 2
    vocab = len((DEMO_MODEL_DIR / "tokenizer" / "vocab.txt").read_text(encoding="utf-8").splitlines())
    tiny_vocab = len((tiny_model / "tokenizer" / "vocab.txt").read_text(encoding="utf-8").splitlines())
    assert one_error_line(result.stderr) == (
        f"error: the tokenizer {DEMO_MODEL_DIR / 'tokenizer'} has {vocab} tokens but the model "
        f"({tiny_model / 'export' / 'float32'}) embeds only {tiny_vocab}: the tokenizer folder belongs to "
        "another model; set model.name_or_path to the model's own tokenizer"
    )
    assert not (tmp_path / "job" / "metrics.json").exists()


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        ("dataset is a file", "error: dataset.dir={data_file} is a file; expected a folder with label.txt"),
        ("prefix is a folder", "error: model.path_prefix={export} is a folder (it holds float32.pdiparams)"),
        (
            "label.txt is a folder",
            "error: {data}/label.txt: is a folder; expected a file of one label per line",
        ),
        (
            "checkpoint without config.json",
            "error: {checkpoint}: not a checkpoint folder, config.json missing",
        ),
    ],
)
def test_user_mistakes_are_one_line(
    breakage: str, expected: str, run_cli: RunCli, tiny_model: Path, demo_data_dir: Path, tmp_path: Path
) -> None:
    data = copy_dataset(demo_data_dir, tmp_path / "data")
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    args = overrides_for(model, data, tmp_path)
    data_file = tmp_path / "data.txt"
    if breakage == "dataset is a file":
        data_file.write_text("x\n")
        args.append(f"dataset.dir={data_file}")
    elif breakage == "prefix is a folder":
        args.append(f"model.path_prefix={model / 'export'}")
    elif breakage == "label.txt is a folder":
        (data / "label.txt").unlink()
        (data / "label.txt").mkdir()
    else:
        (model / "checkpoint" / "config.json").unlink()
        args += ["model.weights=checkpoint", f"model.checkpoint={model / 'checkpoint'}"]
    result = run_cli(*args, "hydra.run.dir=job")
    assert result.returncode == 2
    message = expected.format(
        data_file=data_file, export=model / "export", data=data, checkpoint=model / "checkpoint"
    )
    assert one_error_line(result.stderr).startswith(message)


def test_damaged_cache_entry_is_rebuilt_with_one_warning(
    run_cli: RunCli, tiny_model: Path, demo_data_dir: Path, tmp_path: Path
) -> None:
    data = copy_dataset(demo_data_dir, tmp_path / "data")
    cache = tmp_path / "cache"
    args = [*overrides_for(tiny_model, data, tmp_path), "mlflow.enabled=false"]
    env = {"ERNIE_ONNX_CACHE": str(cache)}
    assert run_cli(*args, "hydra.run.dir=first", env=env).returncode == 0
    first = json.loads((tmp_path / "first" / "metrics.json").read_text())
    (optimized,) = cache.glob("optimized/fp32/*/model.onnx")
    optimized.write_bytes(optimized.read_bytes()[: optimized.stat().st_size // 2])  # a killed copy
    leftover = optimized.parent.parent / f".{optimized.parent.name}.killed-build"
    leftover.mkdir()  # the temporary folder of a build that was killed
    result = run_cli(*args, "hydra.run.dir=second", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [line for line in (result.stdout + result.stderr).splitlines() if "is damaged" in line]
    assert len(warnings) == 1 and "model.onnx has" in warnings[0] and "rebuilding it" in warnings[0]
    assert json.loads((tmp_path / "second" / "metrics.json").read_text())["accuracy"] == first["accuracy"]
    assert not leftover.exists()


def test_written_files_are_readable_by_others(
    run_cli: RunCli, tiny_model: Path, demo_data_dir: Path, tmp_path: Path
) -> None:
    data = copy_dataset(demo_data_dir, tmp_path / "data")
    cache = tmp_path / "cache"
    result = run_cli(
        *overrides_for(tiny_model, data, tmp_path), "hydra.run.dir=job", env={"ERNIE_ONNX_CACHE": str(cache)}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    written = [tmp_path / "job" / name for name in ("metrics.json", "predictions.jsonl", "config.yaml")]
    written += list(cache.glob("optimized/*/*/model.onnx")) + list(cache.glob("onnx/*/model.onnx"))
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044, path  # group and others may read
    folder = next(p for p in cache.glob("onnx/*") if p.is_dir())
    assert stat.S_IMODE(folder.stat().st_mode) & 0o055 == 0o055


def test_a_job_whose_tracking_failed_is_logged_afterwards(
    run_cli: RunCli, tiny_model: Path, demo_data_dir: Path, tmp_path: Path
) -> None:
    data = copy_dataset(demo_data_dir, tmp_path / "data")
    args = [o for o in overrides_for(tiny_model, data, tmp_path) if not o.startswith("mlflow.tracking_uri")]
    failed = run_cli(*args, f"mlflow.tracking_uri=http://127.0.0.1:{free_port()}", "hydra.run.dir=job")
    assert failed.returncode == 2 and "is unreachable" in one_error_line(failed.stderr)
    store = f"sqlite:///{tmp_path}/later.db"
    resync = tracking_command(tmp_path, "resync", str(tmp_path / "job"), "--tracking-uri", store)
    assert resync.returncode == 0, resync.stderr[-3000:]
    client = mlflow.MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("bad-inputs").experiment_id])
    metrics = json.loads((tmp_path / "job" / "metrics.json").read_text())
    assert run.data.metrics["accuracy"] == pytest.approx(metrics["accuracy"])
    assert run.data.params["dataset.dir"] == str(data)
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"metrics.json", "predictions.jsonl"}
    status = json.loads((tmp_path / "job" / "job_status.json").read_text())
    assert run.info.status == "FINISHED" and (status["status"], status["error"]) == ("FINISHED", "")
    # The run's times are the job's (its folder), not the resync's.
    assert run.info.start_time == epoch_ms(status["started_at"])
    assert run.info.end_time == epoch_ms(status["ended_at"])
    # A second resync changes nothing: the same run, no second one.
    again = tracking_command(tmp_path, "resync", str(tmp_path / "job"), "--tracking-uri", store)
    assert again.returncode == 0 and run.info.run_id in again.stdout, again.stderr[-3000:]
    (same,) = client.search_runs([client.get_experiment_by_name("bad-inputs").experiment_id])
    assert same.info.run_id == run.info.run_id and same.data.metrics == run.data.metrics


def tracking_command(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.tracking", *args], cwd=cwd, capture_output=True, text=True
    )
