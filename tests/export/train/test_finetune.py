"""Fine-tuning: layer-wise learning-rate decay (``finetune.layer_lr_decay``: which rate each
parameter gets, on every architecture, and that a fine-tune really moves the lower layers less),
stopping at an epoch of a longer schedule (the refit), and a 2-process ``torchrun`` launch on CPU."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, TrainingArguments

from export.config import DataConfig, FinetuneConfig, ModelConfig, load_config
from export.data.dataset import load_data
from export.errors import ConfigError
from export.train.cache import LAUNCH_VARIABLES, leave_launch, teacher_stage
from export.train.finetune import finetune, layerwise_lr_trainer, layerwise_param_groups, parameter_depth
from tests.builders import REPO, TINY_MODELS, phrase_corpus, tiny_cfg, tiny_model, write_tsv

LR, DECAY = 1e-3, 0.5


def _rates(model: torch.nn.Module, out: Path) -> dict[str, tuple[float, float]]:
    """Parameter name -> (learning rate, weight decay) of the Trainer-built layer-wise optimizer."""
    args = TrainingArguments(output_dir=str(out), learning_rate=LR, weight_decay=0.01, report_to=[], use_cpu=True)
    trainer = layerwise_lr_trainer(DECAY)(model=model, args=args)
    optimizer = trainer.create_optimizer()
    by_id = {id(p): (g["lr"], g["weight_decay"]) for g in optimizer.param_groups for p in g["params"]}
    named = dict(model.named_parameters())
    counts = [sum(p is q for g in optimizer.param_groups for q in g["params"]) for p in named.values()]
    assert all(c == 1 for c in counts), f"parameters in {counts} groups; each must be in exactly one"
    return {n: by_id[id(p)] for n, p in named.items()}


@pytest.mark.parametrize("arch", sorted(TINY_MODELS))
def test_each_layer_gets_its_own_rate_and_the_head_the_full_one(arch: str, tmp_path: Path) -> None:
    model = tiny_model(arch)
    rates = _rates(model, tmp_path)
    layers = 2  # every tiny model has 2 layers
    head = [n for n in rates if n.startswith(("classifier", "pre_classifier"))]
    embeddings = [n for n in rates if "word_embeddings" in n]
    assert head and embeddings, f"{arch}: no head or word-embedding parameters among {sorted(rates)[:8]}..."
    for n in head:
        assert rates[n][0] == pytest.approx(LR), f"{arch} head {n}: lr {rates[n][0]}, want {LR}"
    for n in embeddings:
        want = LR * DECAY ** (layers + 1)
        assert rates[n][0] == pytest.approx(want), f"{arch} {n}: lr {rates[n][0]}, want {want}"
    found = set()
    for n, (lr, _) in rates.items():
        if m := re.search(r"\.layer\.(\d+)\.", n):
            want = LR * DECAY ** (layers - int(m.group(1)))
            assert lr == pytest.approx(want), f"{arch} {n}: lr {lr}, want {want} (layer {m.group(1)})"
            found.add(int(m.group(1)))
    if arch == "albert":  # one layer shared by every depth: the top layer's rate
        shared = [lr for n, (lr, _) in rates.items() if "albert_layer_groups" in n]
        assert shared and all(lr == pytest.approx(LR * DECAY) for lr in shared), f"albert shared layer: {shared}"
    else:
        assert found == {0, 1}, f"{arch}: encoder layers found {found}, want {{0, 1}}"
    no_decay = [n for n, (_, wd) in rates.items() if wd == 0.0]
    assert no_decay and all(n.endswith("bias") or "LayerNorm" in n or "layer_norm" in n.lower() for n in no_decay), (
        f"{arch}: weight decay switched off for {no_decay}"
    )


def test_parameter_depth_of_names_from_each_family() -> None:
    assert parameter_depth("bert.embeddings.word_embeddings.weight", 6) == 0
    assert parameter_depth("electra.embeddings_project.weight", 6) == 0
    assert parameter_depth("bert.encoder.layer.0.attention.self.query.weight", 6) == 1
    assert parameter_depth("distilbert.transformer.layer.5.ffn.lin1.weight", 6) == 6
    assert parameter_depth("bert.pooler.dense.weight", 6) == 7
    assert parameter_depth("classifier.weight", 6) == 7


def test_decay_one_is_one_rate_for_all() -> None:
    model = tiny_model("bert")
    groups = layerwise_param_groups(model, LR, 1.0, 0.0, set())
    assert {g["lr"] for g in groups} == {LR}, [g["lr"] for g in groups]


def test_layer_lr_decay_outside_its_range_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"finetune\.layer_lr_decay.*\(0, 1\]"):
        load_config(None, ["finetune.layer_lr_decay=1.5"])
    with pytest.raises(ConfigError, match=r"finetune\.layer_lr_decay"):
        load_config(None, ["finetune.layer_lr_decay=0"])


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_fine_tune_with_layer_decay_moves_the_embeddings_by_at_most_their_rate(
    tiny_bert_dir: Path, tmp_path: Path
) -> None:
    decay, steps = 0.05, 4
    overrides = (f"finetune.layer_lr_decay={decay}", f"finetune.max_steps={steps}", "finetune.warmup_ratio=0")
    cfg = tiny_cfg(tiny_bert_dir, tmp_path, *overrides)
    teacher = teacher_stage(cfg, load_data(cfg.data)).model.model
    start = AutoModel.from_pretrained(tiny_bert_dir)
    moved_embeddings = (teacher.bert.embeddings.word_embeddings.weight - start.embeddings.word_embeddings.weight).abs()
    moved_top = (teacher.bert.encoder.layer[1].output.dense.weight - start.encoder.layer[1].output.dense.weight).abs()
    lr = cfg.finetune.learning_rate
    # An Adam step moves a weight by at most about 3.2 x its rate (beta1 0.9, beta2 0.999), plus weight decay.
    bound = steps * 3.2 * lr * decay**3
    assert moved_embeddings.max() <= bound, (
        f"embeddings moved {moved_embeddings.max():.2e}, more than {steps} steps "
        f"at lr {lr * decay**3:.1e} allow ({bound:.1e})"
    )
    assert moved_top.max() > 10 * bound, (
        f"top layer moved only {moved_top.max():.2e} at lr {lr * decay:.1e}; embeddings bound {bound:.1e}"
    )


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_stop_at_epoch_replays_the_selection_schedule(tiny_bert_dir: Path, tmp_path: Path) -> None:
    """Stopping at epoch 1 of 3 must leave the learning rate where the 3-epoch schedule has it
    (2/3 of the peak after warm-up ends), not decayed to 0 as a 1-epoch run would."""
    rows = phrase_corpus(20)
    path = write_tsv(rows, tmp_path / "t.tsv")
    data = load_data(DataConfig(train=path, max_train_samples=None, max_length=16)).for_refit(include_eval=True)
    cfg = FinetuneConfig(epochs=3, batch_size=10, learning_rate=1e-3, warmup_ratio=0.0)
    clf = finetune(ModelConfig(str(tiny_bert_dir)), data, cfg, tmp_path / "w", max_length=16, seed=0, stop_at_epoch=1)
    info = json.loads((clf.path / "training.json").read_text())
    per_epoch = int(np.ceil(len(data.train) / 10))
    assert info["steps"] == per_epoch, f"stopped after {info['steps']} steps, one epoch is {per_epoch}"
    assert info["evaluations"] == [] and info["best_validation_accuracy"] is None, info
    (checkpoint,) = (tmp_path / "w" / "checkpoints" / "teacher").glob("checkpoint-*")
    lr = torch.load(checkpoint / "scheduler.pt", weights_only=False)["_last_lr"][0]
    expected = 1e-3 * (3 * per_epoch - per_epoch) / (3 * per_epoch)
    assert abs(lr - expected) < 1e-9, f"learning rate at the stop {lr:.3g}, the 3-epoch schedule has {expected:.3g}"


@pytest.mark.slow
def test_torchrun_two_cpu_processes_share_the_training(tiny_bert_dir: Path, tmp_path: Path) -> None:
    """``torchrun --nproc_per_node 2 -m export``: data parallel on CPU (gloo), one output; after the
    shared stages the processes leave the group together and ``int8-qat``'s training runs on the
    main process alone."""
    data_file = write_tsv(phrase_corpus(60), tmp_path / "train.tsv")
    out = tmp_path / "out"
    sets = [
        f"model.name_or_path={tiny_bert_dir}",
        f"data.train={data_file}",
        f"out={out}",
        "data.holdout=sentences",
        "data.max_train_samples=none",
        "data.max_length=16",
        "finetune.epochs=1",
        "finetune.batch_size=8",
        "distill.epochs=1",
        "distill.batch_size=8",
        "onnx.teacher=false",
        "onnx.quantize=int8-qat",
        "qat.batch_size=8",
        "tflite.enabled=false",
        "verify.max_drop=100",
        "verify.latency_samples=2",
        "verify.latency_threads=1",
    ]
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun, "torchrun is not installed beside this Python"
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "export", *(a for s in sets for a in ("--set", s))]
    env = os.environ | {"OMP_NUM_THREADS": "1", "USE_TF": "0"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    # one log per process, both moved inside; the console shows the main process's lines once
    main_log, worker_log = (out / "logs" / name for name in ("run.log", "run.rank1.log"))
    assert "stage verify: done" in main_log.read_text(), f"the main process's log lost its end:\n{main_log.read_text()}"
    assert "teacher logits for" in worker_log.read_text(), f"the worker's log:\n{worker_log.read_text()}"
    assert not list(tmp_path.glob("out.run*.log")), f"logs left beside the output: {list(tmp_path.glob('out.run*'))}"
    on_console = (proc.stdout + proc.stderr).count("teacher logits for")
    in_log = main_log.read_text().count("teacher logits for")
    assert on_console == in_log, f"'teacher logits' lines: {on_console} on the console, {in_log} in the main log"
    report = json.loads((out / "report.json").read_text())
    # the shipped models are the refit (finetune.refit = all): one epoch, the only check, over every row
    n_rows = report["data"]["refit_rows"]
    for name in ("teacher", "student"):
        assert report["selection"]["models"][name]["chosen_epoch"] == 1.0, report["selection"]
        steps = json.loads((out / "models" / name / "training.json").read_text())["steps"]
        want = int(np.ceil(n_rows / (2 * 8)))
        assert steps == want, f"{name}: {steps} optimizer steps for {n_rows} rows, batch 8 × 2 processes (want {want})"
    qat = report["training"]["student-qat"]
    want = int(np.ceil(0.25 * np.ceil(n_rows / 8)))  # qat.epochs = 0.25 on the same rows, one process
    assert qat["steps"] == want, f"qat: {qat['steps']} steps for {n_rows} rows, batch 8 × 1 process (want {want})"


def _launched_process(rank: int, store: str, results: str) -> None:
    """One of two processes of a launch: joins a gloo group as torchrun would, then leaves it."""
    dist = torch.distributed
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2")
    torch.set_num_threads(1)  # as torchrun's OMP_NUM_THREADS=1
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    leave_launch()
    seen = {
        "in_group": dist.is_initialized(),
        "env": {v: os.environ.get(v) for v in LAUNCH_VARIABLES},
        "threads": torch.get_num_threads(),
    }
    (Path(results) / f"{rank}.json").write_text(json.dumps(seen))


def test_the_processes_of_a_launch_leave_the_group_and_the_main_one_goes_on_alone(tmp_path: Path) -> None:
    """Left in the group, a process can abort (SIGABRT) at exit; left with the launch's variables, the
    main process's next Trainer (int8-qat's) would wait for processes that are gone; the main one
    takes over the threads of the processes that stop."""
    torch.multiprocessing.spawn(_launched_process, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=2)
    main, worker = (json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1))
    assert not main["in_group"] and not worker["in_group"], f"still in the process group: main {main}, worker {worker}"
    assert main["env"] == dict.fromkeys(LAUNCH_VARIABLES), f"the main process still looks launched: {main['env']}"
    assert worker["env"]["RANK"] == "1", f"the worker's launch variables were touched: {worker['env']}"
    want = min(2, os.cpu_count() or 1)  # the threads of both processes, as many as the machine has
    threads = (main["threads"], worker["threads"])
    assert threads == (want, 1), f"threads (main, worker) after leaving: {threads}, want ({want}, 1)"
