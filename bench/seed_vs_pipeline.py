"""The seed's deploy approach and this pipeline side by side, same model, data and threads.

    .venv/bin/python -m bench.seed_vs_pipeline   # writes its section of docs/BENCHMARKS.md

Seed (PaddleNLP multi_class deploy/predictor): paddle2onnx + plain ONNX Runtime session
(intra-op threads set), PaddleNLP tokenizer over the whole split padded to its longest text
(capped at max_seq_length), batches in file order, INT8 = quantize_dynamic defaults.
Pipeline: the runner's own stages with the options of conf/ (`precision=fp32|int8`): fusion,
fast tokenizer, length-sorted batches padded per batch.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from bench.common import bench_config, class_accuracy, machine_lines, parse_arguments, replace_section, table
from pipeline import DEMO_MODEL_DIR, PROJECT_ROOT
from pipeline.core.data import Inputs, read_labels, read_split
from pipeline.core.tokenizer import load_tokenizer
from pipeline.options.config import ArchitectureConfig, Config
from pipeline.stages.convert import convert
from pipeline.stages.evaluate import latency_metrics
from pipeline.stages.export import static_graph
from pipeline.stages.infer import pad_batch, run_texts
from pipeline.stages.prepare import model_tokenizer, open_engine, prepare_model

MODELS = {
    "demo ERNIE": [],
    "ERNIE 3.0 Medium (random weights)": ["model=ernie-3.0-medium-zh", "model.weights=random"],
}


def seed_run(onnx_path: Path, int8: bool, texts: list[str], args) -> tuple[np.ndarray, float, float]:
    """Returns (logits, model seconds, tokenize seconds) the way the seed's predictor works."""
    if int8:
        from onnxruntime.quantization import quantize_dynamic

        quantized = Path(tempfile.mkdtemp()) / "int8.onnx"
        quantize_dynamic(onnx_path, quantized)
        onnx_path = quantized
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    tokenizer = load_tokenizer(str(DEMO_MODEL_DIR / "tokenizer"), "paddlenlp")
    started = time.perf_counter()
    encoded = tokenizer.encode(texts, args.max_seq_length)
    width = max(len(r) for r in encoded.input_ids)  # the whole split's longest text, capped
    ids = pad_batch(encoded.input_ids, encoded.pad_id, width)
    tokenize_seconds = time.perf_counter() - started
    names = [i.name for i in session.get_inputs()]
    logits = []
    started = time.perf_counter()
    for start in range(0, len(ids), args.batch_size):
        batch = ids[start : start + args.batch_size]
        feed = {n: batch if n == "input_ids" else np.zeros_like(batch) for n in names}
        logits.append(session.run(None, feed)[0])
    return np.concatenate(logits), time.perf_counter() - started, tokenize_seconds


def pipeline_run(config: Config, texts: list[str]) -> dict:
    """The job's own stages: prepare_model (convert + optimize), open_engine, run_texts."""
    tokenizer, _ = model_tokenizer(config.model, config.infer.tokenizer)
    model = prepare_model(config, 2, tokenizer)
    result = run_texts(config, Inputs(texts), tokenizer, open_engine(config, model.path), "pipeline")
    cache = Path(config.cache_dir)
    converted = convert(static_graph(config.model, 2, tokenizer.pad_id, cache), config.convert, cache)
    return {
        "onnx_path": converted,  # what the seed runs: the paddle2onnx graph as is
        "result": result,
        "metrics": latency_metrics(result),
        "lengths": [len(r) for r in tokenizer.encode(texts, config.max_seq_length).input_ids],
    }


def accuracy_text(logits: np.ndarray, gold: list[int] | None) -> str:
    return f"{100 * class_accuracy(logits, gold):.2f}" if gold else "n/a (random weights)"


def flops_per_sample(arch: ArchitectureConfig, length: int) -> float:
    """Multiply-adds x 2 of the encoder's matmuls and attention for one sample of `length` tokens."""
    dense = 4 * arch.hidden * arch.hidden + 2 * arch.hidden * arch.ffn
    attention = 2 * length * arch.hidden
    return 2.0 * arch.layers * length * (dense + attention)


def matmul_peak_gflops(threads: int) -> float:
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    with threadpool_limits(threads):
        a @ a
        best = min(_timed(lambda: a @ a) for _ in range(5))
    return 2 * 2048**3 / best / 1e9


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    args = parse_arguments(__doc__, PROJECT_ROOT / "docs" / "BENCHMARKS.md")

    data_dir = bench_config(args).dataset_folder()
    dev = read_split(data_dir, "dev", read_labels(data_dir))
    rows = []
    gflops_lines = []
    for title, model_overrides in MODELS.items():
        random_weights = "model.weights=random" in model_overrides
        texts = dev.texts[: args.medium_samples] if random_weights else dev.texts
        gold = None if random_weights else dev.label_ids
        fp32_model_ms = None
        for int8 in (False, True):
            config = bench_config(args, *model_overrides, f"precision={'int8' if int8 else 'fp32'}")
            ours = pipeline_run(config, texts)
            seed_logits, seed_model_s, seed_tok_s = seed_run(ours["onnx_path"], int8, texts, args)
            n = len(texts)
            seed_e2e = 1000 * (seed_model_s + seed_tok_s) / n
            m = ours["metrics"]
            if not int8:
                fp32_model_ms = m["latency_ms"]
            rows.append(
                [
                    title,
                    "INT8" if int8 else "FP32",
                    accuracy_text(seed_logits, gold),
                    accuracy_text(ours["result"].logits, gold),
                    f"{1000 * seed_model_s / n:.2f}",
                    f"{m['latency_ms']:.2f}",
                    f"{seed_e2e:.2f}",
                    f"{m['e2e_ms']:.2f}",
                    f"**{seed_e2e / m['e2e_ms']:.2f}x**",
                    f"{1000 * seed_tok_s / n:.3f} / {m['tokenize_ms']:.3f}",
                    f"{fp32_model_ms / m['latency_ms']:.2f}x",
                ]
            )
            print(rows[-1], flush=True)
            if title.startswith("ERNIE 3.0 Medium") and not int8:
                result = ours["result"]
                order = sorted(range(n), key=lambda i: ours["lengths"][i])
                widths = [
                    max(ours["lengths"][i] for i in order[s : s + args.batch_size])
                    for s in range(0, n, args.batch_size)
                ]
                flops = sum(
                    size * flops_per_sample(config.model.architecture, width)
                    for size, width in zip(result.batch_sizes, widths, strict=True)
                )
                achieved = flops / result.model_seconds / 1e9
                peak = matmul_peak_gflops(args.threads)
                gflops_lines = [
                    f"- ERNIE 3.0 Medium FP32 (fused) computes {achieved:.1f} GFLOP/s on the padded batches; "
                    f"numpy float32 2048x2048 matmul on {args.threads} threads peaks at {peak:.1f} GFLOP/s "
                    f"here: **{100 * achieved / peak:.0f}% of the measured matmul peak**.",
                ]
    header = [
        "model",
        "precision",
        "seed accuracy %",
        "pipeline accuracy %",
        "seed model ms/sample",
        "pipeline model ms/sample",
        "seed e2e ms/sample",
        "pipeline e2e ms/sample",
        "e2e speed-up",
        "tokenize ms/sample seed / pipeline",
        "model time vs pipeline FP32",
    ]
    lines = [
        "## The seed's approach vs this pipeline",
        "",
        f"Generated by `python -m bench.seed_vs_pipeline`: batch {args.batch_size}, max_seq_length "
        f"{args.max_seq_length}, {args.threads} intra-op threads for both, ONNX Runtime CPU. "
        "e2e = tokenization + padding/feeds + model time, per sample; model = ONNX Runtime calls only "
        "(the seed's latency definition).",
        "",
        *machine_lines(),
        "",
        *table(header, rows),
        "",
        *gflops_lines,
        "",
        "More: [fusion / FP16 / INT8 variants](benchmarks/optimize.md) (`python -m bench.optimize_bench`).",
        "No GPU machine was available when these were measured; GPU rows (CUDA EP, TensorRT EP) are not "
        "measured yet.",
    ]
    replace_section(args.out, "seed-vs-pipeline", lines)
    print(f"wrote the seed-vs-pipeline section of {args.out}")


if __name__ == "__main__":
    main()
