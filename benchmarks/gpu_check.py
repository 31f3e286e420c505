"""Does the model math run on a CUDA device, and match the CPU? This is the GPU path of a Ray Train
worker with ``train.use_gpu=true``: DGL samples blocks on the CPU (PyPI's DGL has no CUDA), the
blocks move to the worker's device, and the teacher, prompt, student and KD losses run there as
torch ops.

    .venv/bin/python benchmarks/gpu_check.py prepare .gpu/case.pt   # here: sample real blocks with DGL
    python benchmarks/gpu_check.py check .gpu/case.pt               # on a GPU machine (needs torch, pydantic; no DGL)

``check`` runs the same sampled batches through stage 1 (teacher + prompt) and stage 2 (student
distilled with all three KD losses) on the CPU and on ``cuda``, from the same initial weights with
dropout off, and compares losses and gradients; then full-graph layer-wise inference and the
evaluation sums; then times a full-graph LightGCN forward on both devices. It prints the figures
and exits nonzero on a mismatch.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from raymm.config import build_config  # noqa: E402
from raymm.evaluation import metric_sums  # noqa: E402
from raymm.graph import EvalSplit, TrainGraph  # noqa: E402
from raymm.models.prompt import hard_tokens  # noqa: E402
from raymm.methods.base import SharedData  # noqa: E402
from raymm.methods.promptmm.tasks import DistillTask, TeacherTask  # noqa: E402

OVERRIDES = ["method.name=promptmm", "model.embedding_dim=32", "method.promptmm.prompt.size=8",
             "method.promptmm.teacher.dropout=0.0", "method.promptmm.prompt.dropout=0.0", "train.fanouts=[10,10]",
             "method.promptmm.distill.list_weight=1.0", "method.promptmm.distill.emb_weight=0.1"]
USERS, ITEMS, EDGES = 2000, 1000, 40000


def _shared(case: dict) -> SharedData:
    g = TrainGraph.from_interactions(case["users"], case["items"], USERS, ITEMS)
    return SharedData(g, EvalSplit.from_interactions(case["val_users"], case["val_items"]), None,
                      case["features"], {"hard_tokens": case["hard_tokens"], "teacher": case.get("teacher")})


def prepare(path: str) -> None:
    from raymm.sampling import NegativeSampler, NeighbourSampler

    rng = np.random.default_rng(0)
    key = np.unique(rng.integers(0, USERS, EDGES) * ITEMS + rng.integers(0, ITEMS, EDGES))
    users, items = key // ITEMS, key % ITEMS
    val = rng.choice(len(users), 2000, replace=False)
    keep = np.setdiff1d(np.arange(len(users)), val)
    features = {"image": rng.normal(size=(ITEMS, 64)).astype(np.float32),
                "text": rng.normal(size=(ITEMS, 96)).astype(np.float32)}
    graph = TrainGraph.from_interactions(users[keep], items[keep], USERS, ITEMS)
    case = {"users": users[keep], "items": items[keep], "val_users": users[val], "val_items": items[val],
            "features": features, "hard_tokens": hard_tokens(features, graph, 8)}
    cfg = build_config({}, OVERRIDES)
    torch.manual_seed(0)
    teacher = TeacherTask(cfg, _shared(case))
    case["teacher"] = teacher.payload()
    student = DistillTask(cfg, _shared(case))
    case["student_state"] = {k: v.clone() for k, v in student.module.student.state_dict().items()}
    sampler = NeighbourSampler(graph, cfg.train.fanouts)
    for name, task in (("teacher_batches", teacher), ("student_batches", student)):
        batches = []
        for b in range(3):
            idx = rng.choice(len(keep), 1024, replace=False)
            batches.append(task.make_batch(case["users"][idx], case["items"][idx], NegativeSampler(graph, seed=b), sampler))
        case[name] = batches
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(case, path)
    print(f"wrote {path}: {len(case['users'])} train edges, 3 teacher and 3 student batches of 1024")


def _steps(task, batches, device: str, name: str, out: dict) -> dict:
    """Loss and backward of ``task`` on each batch; records ``<name>_loss_<i>``, ``<name>_grads_<i>``
    in ``out`` and returns the last step's gradients by parameter name (None: no gradient)."""
    task.module.to(device).train()
    for i, batch in enumerate(batches):
        task.module.zero_grad()
        loss, _ = task.loss(task.module, batch.to(device))
        loss.backward()
        grads = {n: p.grad for n, p in task.module.named_parameters()}
        out[f"{name}_loss_{i}"] = loss.detach().cpu()
        out[f"{name}_grads_{i}"] = {n: g.detach().cpu().clone() for n, g in grads.items() if g is not None}
    return grads


def _run(case: dict, device: str) -> dict:
    """Losses and gradients of both stages, full-graph embeddings and evaluation sums on ``device``."""
    cfg = build_config({}, OVERRIDES)
    out = {}
    teacher = TeacherTask(cfg, _shared(case))
    teacher.module.load_state_dict(case["teacher"]["state_dict"])
    _steps(teacher, case["teacher_batches"], device, "teacher", out)
    student = DistillTask(cfg, _shared(case))
    student.module.student.load_state_dict(case["student_state"])
    grads = _steps(student, case["student_batches"], device, "student", out)
    out["frozen_teacher_has_grad"] = any(g is not None for n, g in grads.items()
                                         if n.startswith("teacher.") and ".prompt." not in f".{n}")
    out["prompt_has_grad"] = any(g is not None for n, g in grads.items() if "prompt" in n)
    shared = _shared(case)
    adj = shared.graph.normalized_adjacency(device, teacher.normalization)
    with torch.no_grad():
        student.module.eval()
        u, i = student.module.student.full_embeddings(adj)
        out["eval_sums"] = metric_sums(u, i, shared.val, shared.graph, cfg.eval.ks).cpu()
        teacher.module.eval()
        tu, ti = teacher.module.full_embeddings(adj)
        out["teacher_emb"] = torch.cat([tu, ti]).cpu()
    return out


def _forward_ms(device: str, users: int, items: int, edges: int, reps: int = 20) -> float:
    """Median wall time of one full-graph 2-layer LightGCN forward (propagation over all nodes)."""
    from raymm.models.lightgcn import LightGCN

    rng = np.random.default_rng(1)
    key = np.unique(rng.integers(0, users, edges).astype(np.int64) * items + rng.integers(0, items, edges))
    g = TrainGraph.from_interactions(key // items, key % items, users, items)
    adj = g.normalized_adjacency(device)
    model = LightGCN(users, items, 64, 2).to(device)
    times = []
    with torch.no_grad():
        for _ in range(reps + 3):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            model.full_embeddings(adj)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times[3:]))


def check(path: str) -> int:
    if not torch.cuda.is_available():
        print("no CUDA device here")
        return 2
    case = torch.load(path, weights_only=False)  # our own file, written by `prepare`
    print(f"torch {torch.__version__}, device {torch.cuda.get_device_name(0)}")
    cpu, gpu = _run(case, "cpu"), _run(case, "cuda")
    failures = []
    for key in sorted(k for k in cpu if k.endswith(tuple("012")) and "loss" in k):
        a, b = float(cpu[key]), float(gpu[key])
        rel = abs(a - b) / max(abs(a), 1e-12)
        print(f"{key}: cpu {a:.6f} cuda {b:.6f} (relative difference {rel:.1e})")
        if rel > 1e-4:
            failures.append(key)
    for key in sorted(k for k in cpu if "grads" in k):
        worst = max(float((cpu[key][n] - gpu[key][n]).abs().max() / (cpu[key][n].abs().max() + 1e-12))
                    for n in cpu[key])
        print(f"{key}: {len(cpu[key])} parameters, largest relative gradient difference {worst:.1e}")
        if set(cpu[key]) != set(gpu[key]) or worst > 1e-3:
            failures.append(key)
    print(f"stage 2 on cuda: prompt gets gradient {gpu['prompt_has_grad']}, frozen teacher gets gradient "
          f"{gpu['frozen_teacher_has_grad']}")
    if not gpu["prompt_has_grad"] or gpu["frozen_teacher_has_grad"]:
        failures.append("stage-2 gradient flow")
    emb = float((cpu["teacher_emb"] - gpu["teacher_emb"]).abs().max())
    sums = float((cpu["eval_sums"] - gpu["eval_sums"]).abs().max())
    print(f"full-graph teacher embeddings: max abs difference {emb:.1e}; evaluation sums: max abs difference {sums:.1e}")
    if emb > 1e-4 or sums > 1e-3:
        failures.append("full-graph inference")
    for users, items, edges in ((USERS, ITEMS, EDGES), (100_000, 50_000, 2_000_000)):
        c, g = _forward_ms("cpu", users, items, edges), _forward_ms("cuda", users, items, edges)
        print(f"full-graph LightGCN forward (d=64, 2 layers), {users} users x {items} items, {edges} sampled edges: "
              f"cpu {c:.2f} ms, cuda {g:.2f} ms (median of 20)")
    print("MISMATCH: " + ", ".join(failures) if failures else "OK: cuda matches cpu")
    return 1 if failures else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["prepare", "check"])
    parser.add_argument("path")
    a = parser.parse_args()
    sys.exit(prepare(a.path) if a.mode == "prepare" else check(a.path))
