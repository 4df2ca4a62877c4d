"""Scoring the agents: is an answer right, and how well did each agent x retriever do over a set of questions.

Answer checking (:func:`answer_matches`) is deliberately mechanical, so that it is reproducible and free:

* the gold answer is split into its alternatives (``5/14, or approximately 35.7%``), stripped of explanations
  (``(i.e., ...)``) and stock phrases (``The limit exists and is equal to ...``, ``... is the only possible value``);
* an answer matches an alternative when, after normalisation (case, spaces, TeX wrappers, unicode minus), they are
  equal; or both are yes/no and agree; or the alternative is a number (integer, decimal, fraction, percentage) and so
  is the answer's last number (relative tolerance 0.2%); or the alternative lists numbers and the answer lists the
  same set; or both parse as formulas (sympy) that agree at several points;
* a gold answer longer than :data:`LONG_GOLD_CHARS` (a BRIGHT StackExchange answer) is not checkable this way: the
  result is ``None``, and only the optional LLM judge (:func:`judge_answer`) scores it.

:func:`summarize` turns per-question records into the comparison's metrics, each with a bootstrap 95% confidence
interval over questions (:mod:`reasonembed_rag.evaluation.stats`); :func:`per_question` gives the per-question values
that paired significance tests compare.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from reasonembed_rag.llm import ChatModel, LLMError

__all__ = ["LONG_GOLD_CHARS", "PAIRED_METRICS", "answer_matches", "judge_answer", "per_question", "summarize"]

LONG_GOLD_CHARS = 120
"""Gold answers longer than this are prose: checked only by the LLM judge."""
RELATIVE_TOLERANCE = 2e-3
PAIRED_METRICS = ("recall", "ndcg@10_first_search", "accuracy")
"""The per-question metrics :func:`per_question` returns, each with a confidence interval in :func:`summarize`."""

_ALTERNATIVES = re.compile(r",?\s+or\s+(?:equivalently\s+|an\s+equivalent\s+form\s+such\s+as\s+)?", re.IGNORECASE)
_EXPLANATION = re.compile(r"\s*\((?:i\.e\.|e\.g\.)[^)]*\)", re.IGNORECASE)
_STOCK = [
    re.compile(r"^the\s+limit\s+exists\s+and\s+is\s+equal\s+to\s+", re.IGNORECASE),
    re.compile(r"\s+is\s+the\s+only\s+possible\s+value$", re.IGNORECASE),
    re.compile(r"^(?:approximately|about|roughly)\s+", re.IGNORECASE),
    re.compile(r"^(?:the\s+(?:final\s+)?answer\s+is|it\s+is|there\s+are|there\s+is)\s+", re.IGNORECASE),
]
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?\s*%?")
_NUMBER_LIST = re.compile(r"^[\sx-z=±,\d./%-]*(?:\s+and\s+[\sx-z=±,\d./%-]+)*$", re.IGNORECASE)
_FORMULA_CHARS = re.compile(r"^[\w\s+\-*/^().!,]+$")


def _normalise(text: str) -> str:
    text = text.replace("−", "-").replace("×", "*").replace("·", "*").replace("$", "")
    text = re.sub(r"\\boxed\{(.*)\}", r"\1", text)
    text = re.sub(r"\\[()\[\]]", "", text)
    return re.sub(r"\s+", "", text.lower()).rstrip(".")


def _alternatives(gold: str) -> list[str]:
    text = _EXPLANATION.sub("", gold.strip())
    forms = []
    for part in _ALTERNATIVES.split(text):
        for pattern in _STOCK:
            part = pattern.sub("", part.strip())
        if part.strip():
            forms.append(part.strip().rstrip("."))
    return forms


def _number(text: str) -> float | None:
    text = text.replace(" ", "").replace("−", "-")
    percent = text.endswith("%")
    text = text.rstrip("%")
    try:
        if "/" in text:
            numerator, denominator = text.split("/", 1)
            value = float(numerator) / float(denominator)
        else:
            value = float(text)
    except (ValueError, ZeroDivisionError):
        return None
    return value / 100 if percent else value


def _close(a: float, b: float, *, approximate: bool = False) -> bool:
    """Equal numbers; within :data:`RELATIVE_TOLERANCE` when one side was written as a decimal or percentage."""
    return math.isclose(a, b, rel_tol=RELATIVE_TOLERANCE if approximate else 1e-9, abs_tol=1e-9)


def _numbers(text: str) -> list[tuple[float, bool]]:
    """Each number in ``text`` and whether it was written approximately (a decimal point or a percent sign)."""
    found = []
    for match in _NUMBER.findall(text.replace("−", "-")):
        value = _number(match)
        if value is not None:
            found.append((value, "." in match or "%" in match))
    return found


def _agree(a: tuple[float, bool], b: tuple[float, bool]) -> bool:
    return _close(a[0], b[0], approximate=a[1] or b[1])


def _formula(text: str) -> Any:
    """A sympy expression for ``text`` (``^`` as power, implicit products, ``C(n, k)`` as binomial), or None."""
    if not _FORMULA_CHARS.match(text) or len(text) > 120:
        return None
    try:
        import sympy
        from sympy.parsing.sympy_parser import (
            convert_xor,
            factorial_notation,
            implicit_multiplication_application,
            parse_expr,
            standard_transformations,
        )

        transformations = (*standard_transformations, implicit_multiplication_application, convert_xor)
        transformations = (*transformations, factorial_notation)
        return parse_expr(text, local_dict={"C": sympy.binomial}, transformations=transformations, evaluate=True)
    except Exception:  # noqa: BLE001 - sympy raises many types on text that is not a formula
        return None


def _same_formula(answer: str, gold: str) -> bool:
    a, b = _formula(answer), _formula(gold)
    if a is None or b is None or not hasattr(a, "free_symbols") or not hasattr(b, "free_symbols"):
        return False
    symbols = sorted(a.free_symbols | b.free_symbols, key=str)
    if not symbols or a.free_symbols != b.free_symbols:
        return False
    try:
        for point in ((7, 3, 2, 5), (9, 4, 3, 6), (12, 5, 7, 2)):
            values = dict(zip(symbols, point, strict=False))
            left, right = complex(a.subs(values).evalf()), complex(b.subs(values).evalf())
            if not (
                math.isclose(left.real, right.real, rel_tol=1e-6, abs_tol=1e-9) and abs(left.imag - right.imag) < 1e-9
            ):
                return False
    except (TypeError, ValueError, ZeroDivisionError, AttributeError):
        return False
    return True


def _matches_form(answer: str, form: str) -> bool:
    answer_norm, form_norm = _normalise(answer), _normalise(form)
    if not answer_norm:
        return False
    if answer_norm == form_norm:
        return True
    first_word = form_norm.split(",")[0]
    if first_word in ("yes", "no"):
        return re.split(r"[^a-z]", answer_norm, maxsplit=1)[0] == first_word
    value = _number(form)
    if value is not None:
        found = _numbers(answer)
        return bool(found) and _agree(found[-1], (value, "." in form or "%" in form))
    if _NUMBER_LIST.match(form) and len(_numbers(form)) > 1:
        wanted, found = sorted(_numbers(form)), sorted(_numbers(answer))
        return len(wanted) == len(found) and all(_agree(a, b) for a, b in zip(wanted, found, strict=True))
    candidates = [answer, answer.rsplit("=", 1)[-1]]
    return any(_same_formula(candidate.strip(), form) for candidate in candidates)


def answer_matches(answer: str, gold: str | None) -> bool | None:
    """Whether ``answer`` (the final-answer text) matches ``gold``; None when gold is missing or prose."""
    if not gold or len(gold) > LONG_GOLD_CHARS:
        return None
    if not answer or not answer.strip():
        return False
    cleaned = answer.strip()
    for pattern in _STOCK:
        cleaned = pattern.sub("", cleaned)
    return any(_matches_form(cleaned, form) for form in _alternatives(gold))


JUDGE_PROMPT = (
    "You grade answers. Question:\n{question}\n\nReference answer:\n{gold}\n\nCandidate answer:\n{answer}\n\n"
    "Does the candidate give the same final answer as the reference? Reply YES or NO."
)


def judge_answer(llm: ChatModel, question: str, gold: str | None, answer: str) -> bool | None:
    """An LLM's verdict on whether ``answer`` agrees with ``gold`` (None without a gold answer or a clear verdict)."""
    if not gold:
        return None
    prompt = JUDGE_PROMPT.format(question=question, gold=gold, answer=answer or "(no answer)")
    try:
        reply = llm.chat([{"role": "user", "content": prompt}], max_tokens=4, temperature=0.0).text
    except LLMError:
        return None
    word = re.sub(r"[^a-z]", " ", reply.lower()).split()
    if not word or word[0] not in ("yes", "no"):
        return None
    return word[0] == "yes"


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def per_question(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Each of :data:`PAIRED_METRICS` per question: ``{metric: {question_id: value}}``.

    ``recall`` (gold documents in the context) and ``ndcg@10_first_search`` cover every question with gold documents
    (a failed run counts 0); ``accuracy`` only the questions whose answer is checkable (``correct`` not None).
    """
    from reasonembed_rag.evaluation.metrics import evaluate_run

    qrels = {r["question_id"]: dict.fromkeys(r["gold_ids"], 1) for r in records if r["gold_ids"]}
    first_search = {}
    for record in records:
        searches = record["result"]["searches"]
        ranked = searches[0]["ranked_ids"] if searches else []
        first_search[record["question_id"]] = {doc: float(len(ranked) - rank) for rank, doc in enumerate(ranked)}
    ndcg = evaluate_run(first_search, qrels)[1] if qrels else {}
    return {
        "recall": {
            r["question_id"]: len(set(r["gold_ids"]) & set(r["result"]["context_ids"])) / len(set(r["gold_ids"]))
            for r in records
            if r["gold_ids"]
        },
        "ndcg@10_first_search": {question: values["ndcg@10"] for question, values in ndcg.items()},
        "accuracy": {r["question_id"]: float(r["correct"]) for r in records if r["correct"] is not None},
    }


def summarize(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Metrics of one agent x retriever over its per-question records.

    Each record holds ``question_id``, ``gold_ids``, ``correct`` (bool or None), optional ``judge`` (bool or None)
    and ``result`` (an :class:`~demos.core.AgentResult` as JSON). Questions whose run failed count as zero for recall
    and nDCG and as wrong when their gold answer is checkable. Each of :data:`PAIRED_METRICS` also gets
    ``<metric>_ci``: the bootstrap 95% interval of its mean over questions (None without values).
    """
    from reasonembed_rag.evaluation.stats import bootstrap_ci

    values = per_question(records)
    results = [record["result"] for record in records]
    summary: dict[str, Any] = {
        "questions": len(records),
        "errors": sum(1 for r in results if r.get("error")),
        **{name: _mean(values[name].values()) for name in PAIRED_METRICS},
        # a list, not a tuple, so the payload equals its JSON round trip
        **{f"{name}_ci": list(bootstrap_ci(list(v.values()))) if v else None for name, v in values.items()},
        "checkable_answers": len(values["accuracy"]),
        "judge_accuracy": _mean(None if r.get("judge") is None else float(r["judge"]) for r in records),
        "searches_per_question": _mean(len(r["searches"]) for r in results),
        "cited_share": _mean(float(bool(r["cited_ids"])) for r in results),
        "redacted_documents": sum(len(r["redacted_ids"]) for r in results),
        "prompt_tokens": _mean(r["prompt_tokens"] for r in results),
        "completion_tokens": _mean(r["completion_tokens"] for r in results),
        "llm_calls": _mean(r["llm_calls"] for r in results),
        "seconds": _mean(r["seconds"] for r in results),
    }
    return summary
