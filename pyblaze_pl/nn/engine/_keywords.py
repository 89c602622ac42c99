"""The keywords of ``fit``: the names users bring from Keras, Lightning or plain PyTorch, and the
error for a keyword that neither ``fit`` nor the engine takes ("did you mean `epochs`?")."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyblaze_pl.nn.engine.base import Engine

# Names users bring from Keras, Lightning or plain PyTorch -> fit's argument.
ALIASES = {
    "epoch": "epochs",
    "n_epochs": "epochs",
    "num_epochs": "epochs",
    "max_epochs": "epochs",
    "optimiser": "optimizer",
    "opt": "optimizer",
    "optim": "optimizer",
    "criterion": "loss",
    "loss_fn": "loss",
    "loss_function": "loss",
    "callback": "callbacks",
    "metric": "metrics",
    "val_loader": "val_data",
    "val_dataloader": "val_data",
    "val_dataloaders": "val_data",
    "validation_data": "val_data",
    "train_loader": "train_data",
    "train_dataloader": "train_data",
    "train_dataloaders": "train_data",
    "devices": "gpu",
    "device": "gpu",
    "accelerator": "gpu",
}
# Lightning Trainer options users pass to fit directly -> where they go.
TRAINER_OPTIONS = (
    "logger",
    "precision",
    "strategy",
    "max_steps",
    "max_time",
    "limit_train_batches",
    "limit_val_batches",
    "gradient_clip_val",
    "gradient_clip_algorithm",
    "check_val_every_n_epoch",
    "val_check_interval",
    "deterministic",
    "default_root_dir",
    "profiler",
    "enable_progress_bar",
    "log_every_n_steps",
)
PLACES = {
    "datamodule": "pass the LightningDataModule as train_data: fit(datamodule, ...)",
    "accumulate_grad_batches": "use gradient_accumulation_steps=",
    **{
        option: f"a Lightning Trainer option: pass trainer_kwargs={{{option!r}: ...}}"
        for option in TRAINER_OPTIONS
    },
}
LOSS_HINT = "pass it by keyword: loss=..."
OPTIMIZER_HINT = "pass it by keyword: optimizer=..."


def suggest(name: str, valid: list[str]) -> str | None:
    """The valid name closest to ``name`` (a known alias first), or None.

    Example:
        >>> suggest("epoch", ["epochs", "callbacks"]), suggest("val_loader", ["val_data"])
        ('epochs', 'val_data')
    """
    alias = ALIASES.get(name)
    if alias in valid:
        return alias
    matches = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    return matches[0] if matches else None


def fit_arguments(engine: Engine) -> list[str]:
    """The named arguments of the engine's ``train`` (= the model's ``fit``), in order, over the
    ``train`` methods of its classes (a subclass's ``train`` passes ``**kwargs`` on)."""
    names: list[str] = []
    for cls in type(engine).__mro__:
        method = cls.__dict__.get("train")
        if method is None:
            continue
        for p in inspect.signature(method).parameters.values():
            variadic = p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
            if p.name != "self" and not variadic and p.name not in names:
                names.append(p.name)
    return names


def keyword_error(
    engine: Engine,
    method: str,
    signature: inspect.Signature,
    kwargs: Mapping[str, Any],
    prefix: str,
    error: TypeError,
) -> TypeError:
    """The error for keywords of ``fit`` that neither ``fit`` nor ``engine.<method>`` takes: it
    names ``fit``'s arguments and suggests the closest one ("did you mean `epochs`?")."""
    params = signature.parameters.values()
    accepted = [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    accepted = accepted[1:] if accepted and accepted[0] == "data" else accepted
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params)
    unknown = [k for k in kwargs if k not in accepted] if not takes_any else list(kwargs)
    name = type(engine).__name__
    if prefix:  # eval_-prefixed arguments of fit, for eval_batch
        valid = [f"{prefix}{a}" for a in accepted]
        where = (
            f"{name}.{method}{signature} accepts: eval_-prefixed arguments of train are passed "
            f"to it without the prefix"
        )
    else:
        own = fit_arguments(engine)
        valid = own + [a for a in accepted if a not in own]
        extra = [a for a in accepted if a not in own]
        where = f"fit ({name}.train) accepts: {', '.join(own)}"
        if extra:
            where += f"; further keywords go to {name}.{method}: {', '.join(extra)}"
    received = ", ".join(f"{prefix}{k}={short(kwargs[k])}" for k in unknown or kwargs)
    hints = []
    for key in unknown:
        close = suggest(f"{prefix}{key}", valid)
        if close is not None:
            hints.append(f"did you mean `{close}` instead of `{prefix}{key}`?")
        elif not prefix and key in PLACES:
            hints.append(
                f"`{key}` is {PLACES[key]}."
                if key in TRAINER_OPTIONS
                else f"for `{key}`, {PLACES[key]}."
            )
    cause = f" ({error})" if prefix or not unknown else ""  # e.g. a positional-only parameter
    message = f"Expected keyword arguments that {where}. Received: {received}{cause}."
    if hints:
        message += " " + " ".join(h[0].upper() + h[1:] for h in hints)
    return TypeError(message)


def short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{type(value).__name__}(...)"
