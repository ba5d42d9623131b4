"""A small PyTorch text classifier and its int8 variant, for the champion/challenger gate.

The "LLM-flavoured" example of the evaluation issue, sized to run on a laptop CPU in seconds
(CUDA when present): synthetic support-ticket texts from seeded templates (with label noise, so
no model reaches 100 %), a hashing tokenizer (no vocabulary file, no download), an
``nn.EmbeddingBag`` + MLP classifier, and its dynamically quantized variant
(``torch.ao.quantization.quantize_dynamic`` on the ``nn.Linear`` layers, int8 weights).

:func:`log_and_register` logs both as MLflow pyfunc models (:class:`TextClassifierPyfunc`,
weights as a ``torch.save`` artifact) and registers them through Keelwatch's registry façade:
fp32 as version N (approved, ``champion``), int8 as version N+1 (``challenger``), so approvals
and aliases are audited like any other model's.

Workers load the pyfunc by module path (``keelwatch.examples.torch_text``), so the class must
stay importable here. Needs the ``torch`` extra (``pip install -e '.[torch]'``).
"""

from __future__ import annotations

import contextlib
import itertools
import re
import tempfile
import warnings
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.pyfunc.model import PythonModel
from torch import nn

from keelwatch.errors import InvalidInputError

if TYPE_CHECKING:
    from keelwatch.entities.registry import ModelVersionInfo
    from keelwatch.registry.facade import ModelRegistry

TEXT_COLUMN = "text"
LABEL_COLUMN = "label"
CLASSES = ("account", "billing", "bug", "praise")
#: Share of rows whose label is replaced by another class: the accuracy ceiling is ~1 - noise.
LABEL_NOISE = 0.08
DEVICE_TAG = "keelwatch.device"
WEIGHTS_ARTIFACT = "weights"

# Slots shared by every class, so single words rarely give the class away.
_OPENERS = ("", "hi team, ", "hello, ", "urgent: ", "quick question: ", "sorry to bother you, ")
_PRODUCTS = ("the app", "the dashboard", "my account", "the mobile app", "the web site", "pro")
_CLOSERS = ("", " thanks.", " please help.", " any update?", " regards.", " asap please.")
_TEMPLATES: dict[str, tuple[str, ...]] = {
    "account": (
        "i cannot log in to {product} since {when}",
        "how do i reset my password for {product}",
        "please change the email on {product}",
        "my login code never arrives for {product}",
        "i was locked out of {product} {when}",
        "delete my profile on {product}",
    ),
    "billing": (
        "i was charged twice for {product} {when}",
        "please refund my last payment for {product}",
        "the invoice for {product} shows the wrong amount",
        "why did my subscription to {product} renew {when}",
        "my card was declined when paying for {product}",
        "cancel the plan for {product} and stop the charges",
    ),
    "bug": (
        "{product} crashes when i open a report",
        "{product} freezes after the update {when}",
        "export in {product} shows an error",
        "the upload button in {product} does nothing",
        "{product} is very slow and times out {when}",
        "charts in {product} render blank since {when}",
    ),
    "praise": (
        "thanks, {product} works great now",
        "love the new version of {product}",
        "{product} is fast and easy since {when}",
        "great support, you fixed {product} quickly",
        "the update to {product} is excellent",
        "really happy with {product}, well done",
    ),
}
_WHEN = ("today", "yesterday", "last week", "this morning", "the update", "monday")
_WORD = re.compile(r"[a-z0-9]+")

# torch 2.13 deprecates eager-mode quantization (in favour of torchao, not a dependency here)
# and quantized tensor creation; the APIs still work and are the stated method, so
# these three warnings are silenced around the calls that raise them, and nowhere else.
_QUANTIZATION_WARNINGS = (
    (DeprecationWarning, "torch.ao.quantization is deprecated"),
    (UserWarning, "torch.quantize_per_tensor, torch.quantize_per_channel"),
    (UserWarning, "TypedStorage is deprecated"),
)


@contextlib.contextmanager
def _quantization_warnings_silenced() -> Iterator[None]:
    with warnings.catch_warnings():
        for category, message in _QUANTIZATION_WARNINGS:
            warnings.filterwarnings("ignore", category=category, message=message)
        yield


# --------------------------------------------------------------------------- data


def build_dataset(rows: int, seed: int, *, noise: float = LABEL_NOISE) -> pd.DataFrame:
    """``rows`` synthetic support tickets (columns ``text``, ``label``), reproducible by
    ``seed``. About a fifth of the texts append a clause of another class (ambiguous tickets),
    and a ``noise`` share of labels is replaced by another class at random."""
    if rows < 1:
        raise InvalidInputError(f"rows must be at least 1, got {rows}")
    if not 0.0 <= noise < 1.0:
        raise InvalidInputError(f"noise must be in [0, 1), got {noise}")
    rng = np.random.default_rng(seed)
    # A separate stream for the noise: the same seed gives the same texts at any noise level.
    noise_rng = np.random.default_rng([seed, 1])
    texts: list[str] = []
    labels: list[str] = []
    for _ in range(rows):
        label = CLASSES[int(rng.integers(len(CLASSES)))]
        text = _sentence(rng, label)
        if rng.random() < 0.2:
            other = CLASSES[int(rng.integers(len(CLASSES)))]
            text = f"{text}, also {_sentence(rng, other)}"
        opener = _OPENERS[int(rng.integers(len(_OPENERS)))]
        closer = _CLOSERS[int(rng.integers(len(_CLOSERS)))]
        if noise_rng.random() < noise:
            others = [c for c in CLASSES if c != label]
            label = others[int(noise_rng.integers(len(others)))]
        texts.append(f"{opener}{text}.{closer}".strip())
        labels.append(label)
    return pd.DataFrame({TEXT_COLUMN: texts, LABEL_COLUMN: labels})


def _sentence(rng: np.random.Generator, label: str) -> str:
    templates = _TEMPLATES[label]
    template = templates[int(rng.integers(len(templates)))]
    return template.format(
        product=_PRODUCTS[int(rng.integers(len(_PRODUCTS)))],
        when=_WHEN[int(rng.integers(len(_WHEN)))],
    )


def hash_tokens(text: str, buckets: int) -> list[int]:
    """Bucket ids of the lower-cased words and word bigrams of ``text`` (CRC-32, stable across
    processes, unlike ``hash``); ``[0]`` for a text without words."""
    words = _WORD.findall(text.lower())
    grams = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
    return [zlib.crc32(gram.encode()) % buckets for gram in grams] or [0]


def encode_texts(
    texts: Sequence[str], buckets: int, device: str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat token ids and per-text offsets, the input ``nn.EmbeddingBag`` takes."""
    ids: list[int] = []
    offsets: list[int] = []
    for text in texts:
        offsets.append(len(ids))
        ids.extend(hash_tokens(str(text), buckets))
    return (
        torch.tensor(ids, dtype=torch.long, device=device),
        torch.tensor(offsets, dtype=torch.long, device=device),
    )


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class TextClassifierConfig:
    """What rebuilds the network before its weights are loaded."""

    classes: tuple[str, ...]
    buckets: int = 1 << 13
    embed_dim: int = 128
    hidden: int = 1024


# The ignore is for checkouts without the torch extra, where nn.Module is Any.
class TextClassifier(nn.Module):  # type: ignore[misc,unused-ignore]
    """Mean of hashed token embeddings, then a two-layer MLP to class logits."""

    def __init__(self, config: TextClassifierConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.EmbeddingBag(config.buckets, config.embed_dim, mode="mean")
        self.mlp = nn.Sequential(
            nn.Linear(config.embed_dim, config.hidden),
            nn.ReLU(),
            nn.Linear(config.hidden, config.hidden),
            nn.ReLU(),
            nn.Linear(config.hidden, len(config.classes)),
        )

    def forward(self, tokens: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """Logits, one row per text."""
        out: torch.Tensor = self.mlp(self.embedding(tokens, offsets))
        return out


def default_device() -> str:
    """``cuda`` when torch sees a GPU, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def is_quantized(model: nn.Module) -> bool:
    """True when ``model`` holds dynamically quantized layers (CPU only)."""
    return any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in model.modules())


def model_device(model: nn.Module) -> str:
    """Where ``model``'s embedding weights live (quantized models: always ``cpu``)."""
    return str(next(model.parameters()).device.type)


def train_text_classifier(
    frame: pd.DataFrame,
    *,
    epochs: int = 4,
    seed: int = 0,
    config: TextClassifierConfig | None = None,
    device: str | None = None,
    batch_size: int = 64,
    learning_rate: float = 5e-3,
) -> TextClassifier:
    """Train on ``frame`` (``text`` and ``label`` columns) with Adam; returns the model in eval
    mode on ``device`` (default: CUDA when present). Reproducible on CPU for a given seed."""
    for column in (TEXT_COLUMN, LABEL_COLUMN):
        if column not in frame.columns:
            raise InvalidInputError(f"training frame lacks column {column!r}")
    if frame.empty or epochs < 1:
        raise InvalidInputError("training needs at least one row and one epoch")
    config = config or TextClassifierConfig(tuple(sorted({str(v) for v in frame[LABEL_COLUMN]})))
    index = {label: i for i, label in enumerate(config.classes)}
    unknown = sorted({str(v) for v in frame[LABEL_COLUMN]} - set(index))
    if unknown:
        raise InvalidInputError(f"column {LABEL_COLUMN!r} has {len(unknown)} unknown class(es)")
    device = device or default_device()
    torch.manual_seed(seed)
    model = TextClassifier(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    texts = [str(t) for t in frame[TEXT_COLUMN]]
    targets = torch.tensor([index[str(v)] for v in frame[LABEL_COLUMN]], device=device)
    order = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        shuffled = torch.randperm(len(texts), generator=order)
        for start in range(0, len(texts), batch_size):
            batch = shuffled[start : start + batch_size]
            tokens, offsets = encode_texts([texts[i] for i in batch], config.buckets, device)
            loss = nn.functional.cross_entropy(model(tokens, offsets), targets[batch.to(device)])
            optimizer.zero_grad()
            torch.autograd.backward(loss)
            optimizer.step()
    return model.eval()


def _cpu_state(model: nn.Module) -> dict[str, Any]:
    # Moved in place: the state dict's ``_metadata`` (layer versions) tells a quantized Linear
    # how to read its packed weights, and a quantized state dict holds non-tensor entries.
    state = model.state_dict()
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            state[key] = value.cpu()
    return state


def quantize(model: TextClassifier) -> TextClassifier:
    """The int8 variant: a copy on the CPU with every ``nn.Linear`` dynamically quantized
    (int8 weights, activations quantized per batch); the embedding stays float32."""
    from torch.ao.quantization import quantize_dynamic

    source = TextClassifier(model.config)
    source.load_state_dict(_cpu_state(model))
    with _quantization_warnings_silenced():
        quantized: TextClassifier = quantize_dynamic(  # type: ignore[no-untyped-call]
            source.eval(), {nn.Linear}, dtype=torch.qint8
        )
    return quantized.eval()


def predict_proba(model: TextClassifier, texts: Sequence[str]) -> np.ndarray[Any, Any]:
    """Class probabilities, shape (len(texts), len(classes)), columns in ``config.classes``
    order."""
    device = model_device(model)
    tokens, offsets = encode_texts(texts, model.config.buckets, device)
    with torch.inference_mode():
        proba = torch.softmax(model(tokens, offsets).float(), dim=1)
    out: np.ndarray[Any, Any] = np.asarray(proba.cpu().numpy(), dtype=np.float64)
    return out


def predict_labels(model: TextClassifier, texts: Sequence[str]) -> np.ndarray[Any, Any]:
    """The most probable class of each text."""
    proba = predict_proba(model, texts)
    labels: np.ndarray[Any, Any] = np.asarray(model.config.classes, dtype=object)
    return np.asarray(labels[proba.argmax(axis=1)], dtype=object)


# --------------------------------------------------------------------------- MLflow pyfunc


class TextClassifierPyfunc(PythonModel):
    """The classifier as an MLflow pyfunc: ``text`` column in; ``prediction`` and one
    ``proba_<class>`` column per class out (Keelwatch's evaluation convention).

    Only the config is pickled with the model; the weights are the ``weights`` artifact
    (a ``torch.save``'d state dict), loaded in :meth:`load_context`. A quantized model's state
    dict holds packed int8 weights, so the network is quantized *before* the state is loaded.
    The device is ``model_config["device"]`` when the loader gives one, else CUDA when
    present; the int8 variant always runs on the CPU (dynamic quantization has no CUDA
    kernels).
    """

    def __init__(self, config: TextClassifierConfig, *, quantized: bool) -> None:
        self.config = config
        self.quantized = quantized
        #: Read by Keelwatch's evaluation runner next to :meth:`predict_proba`.
        self.classes = list(config.classes)
        self._model: TextClassifier | None = None

    def load_context(self, context: Any) -> None:
        """Rebuild the network and load the weights artifact."""
        requested = dict(getattr(context, "model_config", None) or {}).get("device")
        device = "cpu" if self.quantized else str(requested or default_device())
        model = TextClassifier(self.config)
        if self.quantized:
            model = quantize(model)
        with _quantization_warnings_silenced():
            state = torch.load(
                context.artifacts[WEIGHTS_ARTIFACT], map_location=device, weights_only=True
            )
        model.load_state_dict(state)
        self._model = model.to(device).eval()

    def _texts(self, frame: Any) -> list[str]:
        if not isinstance(frame, pd.DataFrame) or TEXT_COLUMN not in frame.columns:
            raise InvalidInputError(f"the input needs a {TEXT_COLUMN!r} column")
        return [str(t) for t in frame[TEXT_COLUMN]]

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        """Probabilities, columns in :attr:`classes` order."""
        if self._model is None:
            raise RuntimeError("load_context has not run")
        return predict_proba(self._model, self._texts(frame))

    def predict(  # MLflow's pyfunc signature; context and params are not needed here
        self,
        context: Any,  # noqa: ARG002
        model_input: pd.DataFrame,
        params: Any = None,  # noqa: ARG002
    ) -> pd.DataFrame:
        """``prediction`` plus ``proba_<class>`` per class, one row per input row."""
        proba = self.predict_proba(model_input)
        out = pd.DataFrame(
            {
                "prediction": np.asarray(self.classes, dtype=object)[proba.argmax(axis=1)]
                if len(proba)
                else np.asarray([], dtype=object)
            }
        )
        for i, label in enumerate(self.classes):
            out[f"proba_{label}"] = proba[:, i]
        return out


def save_pyfunc(model: TextClassifier, path: Path, example: pd.DataFrame) -> None:
    """Write ``model`` as an MLflow pyfunc model folder at ``path`` (weights, signature,
    input example, pinned requirements)."""
    from mlflow.models import infer_signature

    quantized = is_quantized(model)
    weights = path.parent / f"{path.name}-weights.pt"
    with _quantization_warnings_silenced():
        torch.save(_cpu_state(model), weights)
    wrapper = TextClassifierPyfunc(model.config, quantized=quantized)
    wrapper._model = model
    inputs = example[[TEXT_COLUMN]].head(5)
    signature = infer_signature(inputs, wrapper.predict(None, inputs))
    wrapper._model = None  # only the config is pickled
    from mlflow.pyfunc import save_model

    save_model(
        str(path),
        python_model=wrapper,
        artifacts={WEIGHTS_ARTIFACT: str(weights)},
        signature=signature,
        input_example=inputs,
        # Explicit requirements: inferring them runs the model in a subprocess (seconds).
        pip_requirements=[
            f"mlflow=={mlflow.__version__}",
            f"torch=={torch.__version__.split('+')[0]}",
            f"pandas=={pd.__version__}",
            f"numpy=={np.__version__}",
        ],
    )


# --------------------------------------------------------------------------- registering


@dataclass(frozen=True)
class RegisteredPair:
    """The champion (fp32) and challenger (int8) versions :func:`log_and_register` made."""

    fp32: ModelVersionInfo
    int8: ModelVersionInfo
    fp32_run_id: str
    int8_run_id: str


def log_and_register(
    registry: ModelRegistry,
    name: str,
    *,
    fp32: TextClassifier,
    int8: TextClassifier,
    eval_frame: pd.DataFrame,
    actor: str,
    approver: str | None = None,
    reason: str = "torch text example",
) -> RegisteredPair:
    """Log both models as pyfunc runs in experiment ``keelwatch/<name>`` (accuracy on
    ``eval_frame`` as a run metric) and register them: fp32 approved by ``approver`` (default
    ``actor``; it must differ when separation of duties is on) and promoted to ``champion``,
    int8 pointed to by ``challenger`` (left pending: the gate decides). Tags
    ``keelwatch.device``: ``gpu`` on the fp32 version only where CUDA is present; ``cpu``
    on the int8 one always (its kernels are CPU-only)."""
    from keelwatch.registry.registration import ensure_experiment

    experiment_id = ensure_experiment(
        registry.client, f"keelwatch/{name}", f"{registry.artifact_root}/{name}"
    )
    fp32_run = _log_run(registry, experiment_id, name, fp32, eval_frame, actor)
    int8_run = _log_run(registry, experiment_id, name, int8, eval_frame, actor)
    champion = registry.register_version(
        name, run_id=fp32_run, actor=actor, reason=f"{reason}: fp32"
    )
    challenger = registry.register_version(
        name, run_id=int8_run, actor=actor, reason=f"{reason}: int8 dynamic quantization"
    )
    fp32_device = "gpu" if torch.cuda.is_available() else "cpu"
    registry.client.set_model_version_tag(name, champion.version, DEVICE_TAG, fp32_device)
    registry.client.set_model_version_tag(name, challenger.version, DEVICE_TAG, "cpu")
    registry.approve(
        name, champion.version, actor=approver or actor, reason=f"{reason}: fp32 baseline"
    )
    champion = registry.promote(
        name, champion.version, actor=approver or actor, reason=f"{reason}: first champion"
    )
    challenger = registry.set_alias(
        name,
        registry.policy.challenger_alias,
        challenger.version,
        actor=actor,
        reason=f"{reason}: int8 candidate for the gate",
    )
    return RegisteredPair(champion, challenger, fp32_run, int8_run)


def _log_run(
    registry: ModelRegistry,
    experiment_id: str,
    name: str,
    model: TextClassifier,
    eval_frame: pd.DataFrame,
    actor: str,
) -> str:
    """One finished run holding the pyfunc under ``model/``; returns its id. Logged through
    the registry's client, never MLflow's process-global tracking URI."""
    variant = "int8" if is_quantized(model) else "fp32"
    client = registry.client
    run = client.create_run(
        experiment_id,
        run_name=f"{name}-{variant}",
        tags={"mlflow.user": actor, "keelwatch.actor": actor, "keelwatch.variant": variant},
    )
    run_id = str(run.info.run_id)
    try:
        for key, value in {**asdict(model.config), "variant": variant}.items():
            client.log_param(run_id, key, str(value))
        predictions = predict_labels(model, list(eval_frame[TEXT_COLUMN]))
        accuracy = float(np.mean(predictions == eval_frame[LABEL_COLUMN].to_numpy()))
        client.log_metric(run_id, "accuracy", accuracy)
        with tempfile.TemporaryDirectory(prefix="keelwatch-torch-") as folder:
            local = Path(folder) / "model"
            save_pyfunc(model, local, eval_frame)
            client.log_artifacts(run_id, str(local), "model")
        client.set_terminated(run_id, status="FINISHED")
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    return run_id
