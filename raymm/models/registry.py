"""Saved models: ``kind`` -> class, with a format version.

A payload (what ``best_model.pt`` holds) is ``{"kind", "version", "hparams", "state_dict"}`` plus
extras a method adds. A class joins with ``@register("kind", version)``; it provides ``hparams()``
and, when rebuilding needs more than ``cls(**hparams)`` (modality features, sub-modules), a
classmethod ``from_payload(payload, features)``; one whose weights partly come from elsewhere (a
packaged pre-trained encoder) saves only its own part by defining ``payload_state()``. Loading checks kind and version and says what is
wrong instead of guessing.
"""

from __future__ import annotations

from torch import nn

from raymm.errors import ModelMismatchError

MODELS: dict[str, type] = {}


def register(kind: str, version: int = 1):
    def deco(cls):
        if kind in MODELS and MODELS[kind] is not cls:
            raise ValueError(f"model kind {kind!r} is registered twice")
        cls.kind, cls.format_version = kind, version
        MODELS[kind] = cls
        return cls

    return deco


def cpu_state(state: dict) -> dict:
    """A state dict's tensors, detached copies on the CPU."""
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def to_payload(module: nn.Module) -> dict:
    """The saved form of a registered module (weights on the CPU)."""
    kind = getattr(type(module), "kind", None)
    if kind is None:
        raise TypeError(f"{type(module).__name__} is not a registered model (raymm.models.registry.register)")
    state = module.payload_state() if hasattr(module, "payload_state") else module.state_dict()
    return {"kind": kind, "version": type(module).format_version, "hparams": module.hparams(),
            "state_dict": cpu_state(state)}


def model_class(payload: dict, source: str = "payload") -> type:
    import raymm.methods.registry  # noqa: F401  (imports every method, so their models are registered)

    kind, version = payload.get("kind"), payload.get("version")
    if kind not in MODELS:
        raise ModelMismatchError(f"{source}: unknown model kind {kind!r} (known: {sorted(MODELS)})")
    cls = MODELS[kind]
    if version != cls.format_version:
        hint = "; it was saved by an older raymm: retrain it" if version is None else ""
        raise ModelMismatchError(f"{source}: {kind} format version {version!r}, this raymm reads "
                                 f"version {cls.format_version}{hint}")
    return cls


def from_payload(payload: dict, features: dict | None = None, source: str = "payload") -> nn.Module:
    """Rebuild the module a payload describes (eval mode, CPU)."""
    cls = model_class(payload, source)
    if hasattr(cls, "from_payload"):
        model = cls.from_payload(payload, features)
    else:
        model = cls(**payload["hparams"])
        model.load_state_dict(payload["state_dict"])
    return model.eval()
