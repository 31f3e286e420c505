"""``method.name: promptmm``: PromptMM (Wei et al., WWW 2024, https://arxiv.org/abs/2402.17188;
spec ``../shared/docs/promptmm.md``). Stage 1 trains the multimodal teacher with its soft prompt;
stage 2 distils the ID-only LightGCN student from it. ``method.promptmm.teacher.checkpoint`` (a
saved teacher) stands in for stage 1.
"""

from __future__ import annotations

from raymm.errors import InputError, ModelMismatchError
from raymm.methods.base import Method, SharedData, Stage
from raymm.methods.freedom import check_modality_weights, precompute_item_graph
from raymm.methods.promptmm.config import PromptMMConfig
from raymm.methods.promptmm.tasks import DistillTask, TeacherTask
from raymm.models.prompt import hard_tokens


class PromptMM(Method):
    name = "promptmm"
    lazy_adam = True  # train.* is the LightGCN student's (the teacher has its own AdamW)
    config_cls = PromptMMConfig
    needs_features = True

    def min_fanout_layers(self, cfg) -> int:
        return max(cfg.model.num_layers, cfg.method.promptmm.teacher.num_layers, 2)  # modality GNN: two hops

    def check(self, cfg, dataset) -> None:
        super().check(cfg, dataset)
        prompt = cfg.method.promptmm.prompt
        dims = {m: info.dim for m, info in dataset.manifest.modalities.items()}
        if prompt.enabled and dims and prompt.size > min(dims.values()):
            raise InputError(f"method.promptmm.prompt.size={prompt.size} is larger than the smallest feature dimension "
                             f"of dataset {dataset.uri} ({dims}); PCA cannot give more components than that")
        opts = cfg.method.promptmm
        check_modality_weights(opts.teacher.freedom.modality_weights, dataset.manifest.modalities,
                               "method.promptmm.teacher.freedom.modality_weights", dataset.uri)
        d_t = opts.teacher.embedding_dim
        if d_t is not None and d_t != cfg.model.embedding_dim:
            if opts.parity:
                raise InputError(f"method.promptmm.parity needs the public code's equal sizes: teacher.embedding_dim="
                                 f"{d_t} differs from model.embedding_dim={cfg.model.embedding_dim}")
            if opts.distill.init_from_teacher and d_t < cfg.model.embedding_dim:
                raise InputError(f"method.promptmm.distill.init_from_teacher starts the student from the teacher's "
                                 f"embeddings: teacher.embedding_dim={d_t} cannot fill a larger student "
                                 f"(model.embedding_dim={cfg.model.embedding_dim})")

    def precompute(self, cfg, dataset, shared: SharedData) -> None:
        super().precompute(cfg, dataset, shared)
        opts = cfg.method.promptmm
        if opts.teacher.backbone == "freedom" and not opts.teacher.checkpoint:
            precompute_item_graph(opts.teacher.freedom, shared)  # a saved teacher rebuilds its own
        if opts.prompt.enabled:  # PCA hard tokens, once here
            shared.extras["hard_tokens"] = hard_tokens(shared.features, shared.graph, opts.prompt.size,
                                                       "scaled_sum" if opts.parity else "mean")

    def stages(self, cfg) -> list[Stage]:
        t = cfg.method.promptmm.teacher
        return [Stage("teacher", TeacherTask, t.epochs, t.patience),
                Stage("student", DistillTask, cfg.train.epochs, cfg.train.patience)]

    def provided(self, stage, cfg, shared, tracking_uri):
        t = cfg.method.promptmm.teacher
        if stage.name != "teacher" or not t.checkpoint:
            return None
        payload = load_teacher(t.checkpoint, shared, tracking_uri)
        if TEACHER_KINDS[payload["kind"]] != t.backbone:
            raise ModelMismatchError(f"method.promptmm.teacher.backbone={t.backbone} but the saved teacher "
                                     f"{t.checkpoint} is a {payload['kind']} model (set backbone: "
                                     f"{TEACHER_KINDS[payload['kind']]})")
        dim = payload["hparams"]["dim"]
        if t.embedding_dim is not None and t.embedding_dim != dim:
            raise ModelMismatchError(f"method.promptmm.teacher.embedding_dim={t.embedding_dim} but the saved teacher "
                                     f"{t.checkpoint} has d={dim}; leave it unset to use the saved teacher's")
        if cfg.method.promptmm.distill.init_from_teacher and dim < cfg.model.embedding_dim:
            raise ModelMismatchError(f"distill.init_from_teacher: the saved teacher {t.checkpoint} has d={dim}, which "
                                     f"cannot fill a larger student (model.embedding_dim={cfg.model.embedding_dim})")
        return payload

    def after_stage(self, stage, payload, shared) -> None:
        if stage.name == "teacher":
            shared.extras["teacher"] = payload

    def served_extras(self, payloads: dict[str, dict]) -> dict[str, dict]:
        """The teacher, with the prompt as stage 2 left it (the student payload carries it)."""
        teacher = payloads.get("teacher")
        if teacher is None:
            return {}
        teacher = {**teacher, "state_dict": dict(teacher["state_dict"])}
        for k, v in payloads.get("student", {}).get("prompt_state_dict", {}).items():
            teacher["state_dict"][f"prompt.{k}"] = v
        return {"teacher": teacher}


# Saved models that can teach (``forward(batch)`` gives a TeacherOutput, ``full(adj)`` its
# full-graph form) -> the ``teacher.backbone`` that trains them.
TEACHER_KINDS = {"promptmm_teacher": "promptmm", "freedom": "freedom", "lattice": "lattice"}


def load_teacher(ref: str, shared: SharedData, tracking_uri: str | None = None) -> dict:
    """A saved teacher (checkpoint dir, ``best_model.pt`` file, or an MLflow artifact URI such as
    ``runs:/<run id>/teacher_best_model.pt``), checked against the dataset."""
    from raymm.model_io import load_payload
    from raymm.models.registry import model_class

    payload = load_payload(ref, tracking_uri)
    model_class(payload, ref)
    if payload.get("kind") not in TEACHER_KINDS:
        raise ModelMismatchError(f"{ref} is not a teacher this method can distil from (kind={payload.get('kind')}; "
                                 f"teachers: {sorted(TEACHER_KINDS)})")
    h = payload["hparams"]
    g = shared.graph
    dims = {m: int(x.shape[1]) for m, x in shared.features.items()}
    problems = []
    if (h["num_users"], h["num_items"]) != (g.num_users, g.num_items):
        problems.append(f"{h['num_users']} users / {h['num_items']} items vs the dataset's {g.num_users} / {g.num_items}")
    if h["feature_dims"] != dims:
        problems.append(f"modalities {h['feature_dims']} vs the dataset's {dims}")
    if problems:
        raise ModelMismatchError(f"teacher checkpoint {ref} does not match the dataset: " + "; ".join(problems))
    return payload


METHOD = PromptMM()
