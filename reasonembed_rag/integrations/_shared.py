"""What every framework adapter needs from the core: which model, with which options, and one loaded encoder per
model and options, shared process-wide.

Frameworks construct embedding objects freely (LangChain's standard tests build one per test, Chroma rebuilds its
embedding function every time it reads a collection's configuration). Loading a model each time would cost seconds
to minutes, so adapters built from a model name share one :class:`~reasonembed_rag.ReasonEmbedEncoder` per name and
loading options. The options follow langchain-huggingface: ``model_kwargs`` go to
:meth:`ReasonEmbedEncoder.from_pretrained` (``device``, ``dtype``, ``max_length``, ...), ``encode_kwargs`` to every
encode call (``batch_size``, ``show_progress``). Nothing here imports a framework.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reasonembed_rag.encoder import ReasonEmbedEncoder

logger = logging.getLogger(__name__)

RECORDED_SETTINGS = ("pooling", "max_length", "query_format", "device")
"""The loading options a Chroma collection records with its embedding function (see
:meth:`ReasonEmbedEncoder.loading_settings`)."""
VECTOR_SETTINGS = ("pooling", "max_length", "query_format")
"""The recorded settings that change the vectors: a collection refuses an update that changes one of them."""

_ENCODERS: dict[str, list[tuple[dict[str, Any], ReasonEmbedEncoder]]] = {}
_LOCK = threading.Lock()


def resolve_model_name(
    model: str | None, model_name: str | None, encoder: ReasonEmbedEncoder | None, *, adapter: str
) -> str:
    """The model an adapter embeds with: ``model=``, its alias ``model_name=`` (langchain-huggingface's name for
    it), or the name of the ``encoder`` given.

    Raises:
        ValueError: The names disagree, or none was given.
    """
    if model is not None and model_name is not None and model != model_name:
        raise ValueError(f"model={model!r} and model_name={model_name!r} disagree; pass one of them.")
    name = model if model is not None else model_name
    if encoder is not None:
        if name is not None and name != encoder.name:
            raise ValueError(f"model={name!r} disagrees with the encoder's name {encoder.name!r}; pass one.")
        return encoder.name
    if not isinstance(name, str) or not name:
        raise ValueError(f"{adapter} needs model= (an alias such as 'minilm-l6') or encoder=, got {name!r}.")
    return name


def _keyword_options(function: Any) -> tuple[str, ...]:
    parameters = inspect.signature(function).parameters.values()
    return tuple(parameter.name for parameter in parameters if parameter.kind is parameter.KEYWORD_ONLY)


def _check_names(options: Mapping[str, Any] | None, accepted: tuple[str, ...], what: str) -> dict[str, Any]:
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError(f"{what} must be a dict, got {type(options).__name__}: {options!r:.80}.")
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"Unknown {what} {', '.join(map(repr, unknown))}. Accepted: {', '.join(accepted)}.")
    return dict(options)


def check_model_kwargs(model_kwargs: Mapping[str, Any] | None, *, encoder: ReasonEmbedEncoder | None = None) -> dict:
    """``model_kwargs`` checked against :meth:`ReasonEmbedEncoder.from_pretrained`'s options.

    Raises:
        ValueError: An unknown option, or options together with an already loaded ``encoder``.
    """
    from reasonembed_rag.encoder import ReasonEmbedEncoder

    options = _check_names(model_kwargs, _keyword_options(ReasonEmbedEncoder.from_pretrained), "model_kwargs")
    if options and encoder is not None:
        raise ValueError(
            f"model_kwargs={options!r} configure loading, but the encoder {encoder.name!r} is already loaded: "
            "pass them to ReasonEmbedEncoder.from_pretrained, or pass model= instead of encoder=."
        )
    return options


def check_encode_kwargs(encode_kwargs: Mapping[str, Any] | None) -> dict:
    """``encode_kwargs`` checked against :meth:`ReasonEmbedEncoder.encode`'s options (``batch_size``,
    ``show_progress``).

    Raises:
        ValueError: An unknown option or a batch size that is not a positive int.
    """
    from reasonembed_rag.encoder import ReasonEmbedEncoder

    options = _check_names(encode_kwargs, _keyword_options(ReasonEmbedEncoder.encode), "encode_kwargs")
    size = options.get("batch_size")
    if size is not None and (type(size) is not int or size < 1):
        raise ValueError(f"encode_kwargs batch_size must be a positive int, got {size!r}.")
    return options


def recorded_settings(encoder: Any) -> dict[str, Any]:
    """:meth:`ReasonEmbedEncoder.loading_settings` of ``encoder``; an encoder that only has the store's protocol
    records its query format."""
    settings = getattr(encoder, "loading_settings", None)
    return dict(settings()) if callable(settings) else {"query_format": encoder.query_format}


def changed_vector_settings(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """How two recorded configurations differ in what shapes the vectors: the model, and each of
    :data:`VECTOR_SETTINGS` recorded by both (``None`` means the model's default and is not compared).

    Returns:
        One ``"name old -> new"`` line per difference; empty when vectors made under ``old`` still fit ``new``.
    """
    return [
        f"{name} {old.get(name)!r} -> {new.get(name)!r}"
        for name in ("model", *VECTOR_SETTINGS)
        if old.get(name) != new.get(name) and (name == "model" or None not in (old.get(name), new.get(name)))
    ]


def usable_device(device: str | None) -> str | None:
    """``device`` when this machine has it, else ``None`` (the default device), so that a collection recorded on a
    GPU machine opens on a laptop."""
    if device is None:
        return None
    from reasonembed_rag.encoder import resolve_device

    try:
        resolve_device(device)
    except ValueError as error:
        logger.warning("%s Using the default device instead.", error)
        return None
    return device


def _matches(encoder: ReasonEmbedEncoder, options: Mapping[str, Any]) -> bool:
    """Whether ``encoder`` already embeds as ``options`` ask. Only recorded settings can be read back, and no
    options means the model's own settings, which an encoder loaded with options may not have."""
    if not options or set(options) - set(RECORDED_SETTINGS):
        return False
    settings = recorded_settings(encoder)
    return all(settings.get(name) == value for name, value in options.items())


def shared_encoder(model: str, model_kwargs: Mapping[str, Any] | None = None) -> ReasonEmbedEncoder:
    """The encoder for ``model`` loaded with ``model_kwargs``, loaded on first use and shared by every adapter in
    this process.

    Args:
        model: Registry alias (``minilm-l6``), Hugging Face Hub id, or local model folder.
        model_kwargs: :meth:`ReasonEmbedEncoder.from_pretrained` options. Part of the sharing key: other options
            load another copy, unless an encoder already loaded for ``model`` has exactly these recorded settings.

    Returns:
        The loaded encoder; later calls with the same ``model`` and options return the same object.
    """
    if not isinstance(model, str) or not model:
        raise ValueError(f"model must be a registry alias, Hub id or folder path, got {model!r}.")
    options = check_model_kwargs(model_kwargs)
    with _LOCK:
        loaded = _ENCODERS.setdefault(model, [])
        for asked, encoder in loaded:
            if asked == options or _matches(encoder, options):
                return encoder
        from reasonembed_rag.encoder import ReasonEmbedEncoder

        encoder = ReasonEmbedEncoder.from_pretrained(model, **options)
        loaded.append((options, encoder))
        return encoder


def share_encoder(encoder: ReasonEmbedEncoder) -> None:
    """Make an already loaded encoder the one that adapters built from its name (without options) will use."""
    with _LOCK:
        loaded = [(asked, other) for asked, other in _ENCODERS.get(encoder.name, []) if asked != {}]
        _ENCODERS[encoder.name] = [({}, encoder), *loaded]
