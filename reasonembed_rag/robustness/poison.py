"""Corpus poisoning: adversarial passages, who they target, a scratch copy of the collection to inject them into,
and the attack success rate.

Targets (:func:`assign_targets`): with N passages and Q queries, passage ``j`` targets a group of queries.
N >= Q: one query each, round-robin (passage ``j`` -> query ``j mod Q``, so every query gets N // Q or N // Q + 1
passages). N < Q: the queries are split into N clusters by spherical k-means (k-means++ start, seeded) over
TF-IDF bag-of-words vectors of their text - model-independent, so every model faces the same query-copy passages.

Attacks:

* ``query_copy`` (:func:`query_copy_passages`): a passage is the text of its target queries, closest to the group's
  centroid first, each cut to an equal share of a word budget (``max_words``, default 200) - the attacker copies the
  questions it wants to capture, a black-box attack that needs no access to the model.
* ``hotflip`` (:class:`HotFlip`): white-box, gradient-guided token flips against the embedding model under test
  (Zhong et al. 2023, "Poisoning retrieval corpora by injecting adversarial passages"). It starts from the
  query-copy passage cut to ``tokens`` tokens (or, with ``start="random"``, from random tokens as in the paper)
  and, for ``steps`` steps, picks a random position, ranks every
  vocabulary token by the first-order gain ``(e_w - e_cur) . grad`` of the similarity between the passage vector and
  the mean vector of its target queries (queries embedded with their instruction), re-scores the best
  ``candidates`` exactly in one batch and keeps the best flip if it raises the similarity. Candidates are tokens
  that survive a decode/encode round trip, so the injected text embeds as optimised. BM25 has no gradient: the
  attack is skipped for it.

Injection (:class:`PoisonedCopy`): the clean collection's vectors are copied into a scratch collection in the same
Chroma database; passages are embedded and added there, searched through the chosen path, removed, and the scratch
collection is deleted at the end. The user's collection is only read.
"""

from __future__ import annotations

import logging
import random
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

ATTACKS = ("query_copy", "hotflip")
"""Poisoning attacks, as named in the JSON report."""
ASR_CUTOFFS = (5, 10, 20, 50)
DEFAULT_SIZES = (10, 50)
HOTFLIP_STARTS = ("query_copy", "random")
INJECTED_PREFIX = "__poisoned__"
"""Ids of injected passages start with this (a real corpus id that does too is refused)."""


def check_attacks(attacks: Sequence[str] | str) -> list[str]:
    """The poisoning attacks, validated (see :func:`.perturb.check_names`)."""
    from .perturb import check_names

    return check_names(attacks, ATTACKS, what="poisoning attack", flag="--attacks")


def check_sizes(sizes: Sequence[int]) -> list[int]:
    """Numbers of injected passages: positive integers."""
    if isinstance(sizes, str):
        try:
            sizes = [int(s) for s in sizes.split(",") if s.strip()]
        except ValueError as error:
            raise ValueError(f"Poison sizes must be comma-separated integers such as 10,50, got {sizes!r}.") from error
    bad = [s for s in sizes if not isinstance(s, int) or isinstance(s, bool) or s < 1]
    if bad:
        raise ValueError(f"Number of injected passages must be a positive integer, got {bad[0]!r} (e.g. 10,50).")
    return list(dict.fromkeys(sizes))


def injected_id(attack: str, size: int, index: int) -> str:
    return f"{INJECTED_PREFIX}-{attack}-{size}-{index:04d}"


# ----------------------------------------------------------------------------------------------- targets


def _tfidf(texts: Sequence[str]) -> np.ndarray:
    from .perturb import stopwords

    stop = stopwords()
    docs = [[w for w in re.findall(r"[a-z0-9]+", t.lower()) if w not in stop] for t in texts]
    vocabulary = {w: i for i, w in enumerate(sorted({w for d in docs for w in d}))}
    counts = np.zeros((len(texts), max(1, len(vocabulary))), dtype=np.float64)
    for row, words in enumerate(docs):
        for word in words:
            counts[row, vocabulary[word]] += 1
    idf = np.log((1 + len(texts)) / (1 + (counts > 0).sum(axis=0))) + 1
    vectors = counts * idf
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


def _kmeans(vectors: np.ndarray, k: int, seed: int, iterations: int = 30) -> np.ndarray:
    """Spherical k-means with k-means++ seeding; returns each row's cluster (every cluster non-empty)."""
    rng = np.random.default_rng(seed)
    centroids = [vectors[rng.integers(len(vectors))]]
    for _ in range(1, k):
        distance = np.clip(1 - np.max(vectors @ np.array(centroids).T, axis=1), 0, None)
        weights = distance / distance.sum() if distance.sum() > 0 else None
        centroids.append(vectors[rng.choice(len(vectors), p=weights)])
    centres = np.array(centroids)
    labels = np.zeros(len(vectors), dtype=int)
    for _ in range(iterations):
        similarity = vectors @ centres.T
        labels = similarity.argmax(axis=1)
        for cluster in range(k):
            sizes = np.bincount(labels, minlength=k)
            if sizes[cluster] == 0:  # an empty cluster takes the point furthest from the centre of a shared cluster
                own = similarity[np.arange(len(vectors)), labels]
                labels[int(np.argmin(np.where(sizes[labels] > 1, own, np.inf)))] = cluster
        updated = np.array([vectors[labels == c].sum(axis=0) for c in range(k)])
        norms = np.linalg.norm(updated, axis=1, keepdims=True)
        updated = updated / np.where(norms == 0, 1, norms)
        if np.allclose(updated, centres):
            break
        centres = updated
    return labels


def assign_targets(texts: Sequence[str], passages: int, *, seed: int = 0) -> list[list[int]]:
    """For each passage, the indices of the queries it targets (see the module docstring); deterministic."""
    if passages < 1 or not texts:
        return []
    if passages >= len(texts):
        return [[j % len(texts)] for j in range(passages)]
    vectors = _tfidf(texts)
    labels = _kmeans(vectors, passages, seed)
    groups = []
    for cluster in range(passages):
        members = np.flatnonzero(labels == cluster)
        centre = vectors[members].sum(axis=0)
        closeness = vectors[members] @ centre
        groups.append([int(members[i]) for i in np.argsort(-closeness, kind="stable")])
    return sorted(groups, key=lambda group: min(group))


def query_copy_passages(texts: Sequence[str], groups: Sequence[Sequence[int]], *, max_words: int = 200) -> list[str]:
    """One passage per group: its queries' texts, each cut to an equal share of ``max_words`` words."""
    passages = []
    for group in groups:
        share = max(8, max_words // max(1, len(group)))
        passages.append(" ".join(" ".join(texts[i].split()[:share]) for i in group))
    return passages


# ----------------------------------------------------------------------------------------------- attack success


def attack_success_rate(
    run: Mapping[str, Mapping[str, float]],
    injected: set[str] | frozenset[str],
    *,
    excluded: Mapping[str, Sequence[str]] | None = None,
    cutoffs: Sequence[int] = ASR_CUTOFFS,
) -> dict[str, float]:
    """``asr@k``: the share of queries with an injected passage among their top k (excluded ids dropped first).

    Every query of ``run`` counts, including those with no hits; with no injected ids every rate is 0.
    """
    from ..evaluation.metrics import drop_excluded

    if not run:
        return {f"asr@{k}": 0.0 for k in cutoffs}
    ranked = drop_excluded(run, excluded or {}, keep=max(cutoffs))
    hits = {k: 0 for k in cutoffs}
    for query_hits in ranked.values():
        order = list(query_hits)
        first = next((rank for rank, doc in enumerate(order) if doc in injected), None)
        for k in cutoffs:
            hits[k] += first is not None and first < k
    return {f"asr@{k}": hits[k] / len(ranked) for k in cutoffs}


# ----------------------------------------------------------------------------------------------- HotFlip


@dataclass(frozen=True)
class HotFlipSettings:
    """Budget of the gradient attack: per passage, ``steps`` flips tried among ``candidates`` tokens each."""

    steps: int = 10
    candidates: int = 8
    tokens: int = 32
    """Passage length in tokens (without the model's special tokens)."""
    start: str = "query_copy"
    """``query_copy`` (refine the query-copy passage) or ``random`` (random tokens, as in Zhong et al.)."""

    def __post_init__(self) -> None:
        if self.start not in HOTFLIP_STARTS:
            raise ValueError(f"Unknown HotFlip start {self.start!r}. Accepted values: {', '.join(HOTFLIP_STARTS)}.")
        for name in ("steps", "candidates", "tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"HotFlip {name} must be a positive integer, got {value!r}.")


@dataclass
class HotFlipPassage:
    text: str
    similarity_before: float
    """Mean cosine similarity of the starting passage's text to its target queries (re-embedded from text)."""
    similarity_after: float
    """The same for the final passage text."""
    flips: int


class HotFlip:
    """Gradient-guided token flips against a :class:`~reasonembed_rag.ReasonEmbedEncoder` (see module docstring)."""

    def __init__(self, encoder: Any, settings: HotFlipSettings | None = None, *, seed: int = 0) -> None:
        import torch

        self.encoder = encoder
        self.settings = settings or HotFlipSettings()
        self.rng = random.Random(seed)
        self.model = encoder.model
        self.device = next(self.model.parameters()).device
        self.embeddings = self.model.get_input_embeddings()
        self.prefix, self.suffix = encoder.special_tokens
        self.allowed = torch.tensor(self._round_trip_tokens(), dtype=torch.bool, device=self.device)

    def _round_trip_tokens(self) -> list[bool]:
        """Vocabulary tokens that decode to text which encodes back to the same single token."""
        tokenizer = self.encoder.tokenizer
        size = int(self.embeddings.weight.shape[0])
        special = set(tokenizer.all_special_ids)
        pieces = tokenizer.batch_decode([[i] for i in range(size)])
        encoded = tokenizer(pieces, add_special_tokens=False)["input_ids"]
        return [
            i not in special and bool(piece.strip()) and list(ids) == [i]
            for i, (piece, ids) in enumerate(zip(pieces, encoded, strict=True))
        ]

    def _inputs(self, rows: Sequence[Sequence[int]]) -> dict[str, Any]:
        return {name: tensor.to(self.device) for name, tensor in self.encoder.pad_token_ids(rows).items()}

    def _similarity(self, rows: Sequence[Sequence[int]], target: Any) -> Any:
        import torch

        with torch.no_grad():
            inputs = self._inputs(rows)
            hidden = self.model(**inputs)[0]
            return self.encoder.pool(hidden, inputs["attention_mask"]) @ target

    def _gradient(self, ids: list[int], target: Any) -> Any:
        import torch

        inputs = self._inputs([ids])
        embedded = self.embeddings(inputs.pop("input_ids")).detach().requires_grad_(True)
        hidden = self.model(inputs_embeds=embedded, **inputs)[0]
        similarity = (self.encoder.pool(hidden, inputs["attention_mask"]) @ target).sum()
        (gradient,) = torch.autograd.grad(similarity, embedded)
        return gradient[0]

    def attack(self, start: str, target_queries: Sequence[str], *, instruction: str | None = None) -> HotFlipPassage:
        """Optimise one passage, starting from ``start`` (cut or padded with random tokens to the passage length),
        towards the mean vector of ``target_queries``."""
        import torch

        tokenizer = self.encoder.tokenizer
        vectors = self.encoder.encode_queries(list(target_queries), instruction=instruction, show_progress=False)
        target_np = vectors.mean(axis=0)
        target = torch.tensor(target_np, device=self.device)
        content = list(tokenizer(start, add_special_tokens=False)["input_ids"])[: self.settings.tokens]
        allowed_ids = torch.nonzero(self.allowed).flatten().tolist()
        while len(content) < self.settings.tokens:
            content.append(self.rng.choice(allowed_ids))
        ids = [*self.prefix, *content, *self.suffix]
        positions = list(range(len(self.prefix), len(self.prefix) + len(content)))
        current = float(self._similarity([ids], target)[0])
        weight = self.embeddings.weight.detach()
        flips = 0
        for _ in range(self.settings.steps):
            position = self.rng.choice(positions)
            gain = weight @ self._gradient(ids, target)[position]
            gain[~self.allowed] = -torch.inf
            gain[ids[position]] = -torch.inf
            candidates = torch.topk(gain, self.settings.candidates).indices.tolist()
            rows = [ids[:position] + [c] + ids[position + 1 :] for c in candidates]
            scores = self._similarity(rows, target)
            best = int(torch.argmax(scores))
            if float(scores[best]) > current:
                ids, current, flips = rows[best], float(scores[best]), flips + 1
        text = tokenizer.decode(ids[len(self.prefix) : len(ids) - len(self.suffix)])
        start_text = tokenizer.decode(content)
        before, after = self.encoder.encode_documents([start_text, text], show_progress=False) @ target_np
        return HotFlipPassage(text, float(before), float(after), flips)


# ----------------------------------------------------------------------------------------------- injection


STALE_AFTER = 24 * 3600.0
"""Seconds after which a scratch copy on a shared Chroma server counts as left behind by a run that died."""


class PoisonedCopy:
    """A scratch copy of a clean collection to inject passages into; the clean collection is only read.

    Use as a context manager: the scratch collection is deleted on exit. A run killed before that (``reasonembed-rag
    robustness`` turns SIGTERM into a normal exit, but SIGKILL or a power cut leave the copy behind) is cleaned up by
    the next copy of the same collection: see :func:`sweep_stale_copies`.

    Args:
        clean: The :class:`~reasonembed_rag.store.ChromaStore` of the clean corpus.
        instruction: Query instruction for framework retrievers over the copy.
    """

    def __init__(self, clean: Any, *, instruction: str | None = None) -> None:
        self.clean = clean
        sweep_stale_copies(clean)
        # The creation time in the name lets a later run tell a stale copy from a live one on a shared server.
        self.name = f"{_scratch_prefix(clean.name)}{int(time.time()):08x}-{uuid.uuid4().hex[:6]}"
        self.store = clean.copy(self.name, instruction=instruction)

    def inject(self, passages: Mapping[str, str]) -> None:
        """Embed and add passages (id -> text)."""
        self.store.add_documents(passages.items(), show_progress=False, total=len(passages))

    def remove(self, ids: Sequence[str]) -> None:
        """Remove injected passages by id."""
        self.store.delete(ids)

    def close(self) -> None:
        """Delete the scratch collection (idempotent)."""
        self.store.delete_collection()

    def __enter__(self) -> PoisonedCopy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _scratch_prefix(clean_name: str) -> str:
    return f"{clean_name[:200].rstrip('-._')}-poisoned-"


def sweep_stale_copies(clean: Any, *, stale_after: float = STALE_AFTER) -> list[str]:
    """Delete scratch copies of ``clean`` that an interrupted run left in its database; return their names.

    On an embedded folder the clean store holds the folder's writer lock, so no other run can be using a copy and
    every one is stale. On a Chroma server another run may be, so only copies older than ``stale_after`` seconds go.
    A collection whose name looks like a copy but that another model built is left alone.

    Args:
        clean: The :class:`~reasonembed_rag.store.ChromaStore` of the clean corpus.
        stale_after: Age in seconds beyond which a copy on a server counts as stale.
    """
    from ..store import ChromaStore, CollectionMismatchError

    # Copies are named PREFIX<creation time, 8 hex>-<6 hex>; older versions used PREFIX<10 hex>, with no time.
    suffix = r"(?:(?P<time>[0-9a-f]{8})-[0-9a-f]{6}|[0-9a-f]{10})$"
    pattern = re.compile("^" + re.escape(_scratch_prefix(clean.name)) + suffix)
    swept = []
    for name in clean.collection_names():
        found = pattern.match(name)
        if found is None:
            continue
        created = int(found["time"], 16) if found["time"] else None
        if not clean.holds_lock and (created is None or time.time() - created < stale_after):
            continue
        try:
            copy = ChromaStore(name, clean.encoder, chroma=clean.client, create=False)
        except (CollectionMismatchError, LookupError):
            continue
        if copy.delete_collection():
            swept.append(name)
    if swept:
        logger.warning("removed %d scratch collection(s) left by an interrupted run: %s", len(swept), ", ".join(swept))
    return swept
