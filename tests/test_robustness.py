"""Robustness suite, query side: perturbations on real CHAMP queries (deterministic, about rate x words changed, the
rest kept), real WordNet synonyms, paraphrase plumbing, and clear errors for bad arguments."""

from __future__ import annotations

from collections import Counter

import pytest

from reasonembed_rag.cli import main
from reasonembed_rag.robustness.perturb import (
    FAMILIES,
    LOCAL_FAMILIES,
    QWERTY_NEIGHBOURS,
    TYPOS,
    Perturber,
    check_families,
    check_rate,
    stopwords,
    typo,
    words_to_change,
)


@pytest.fixture(scope="module")
def queries() -> list[str]:
    """The real test-side CHAMP problems (109 competition-math queries)."""
    from reasonembed_rag.evaluation.offline import champ_rows

    return [row["query"] for row in champ_rows()[0]["test"]]


def _kept_in_order(before: list[str], after: list[str]) -> int:
    """Tokens of ``before`` that survive, in order, in ``after`` (longest common subsequence)."""
    table = [[0] * (len(after) + 1) for _ in range(len(before) + 1)]
    for i, a in enumerate(before):
        for j, b in enumerate(after):
            table[i + 1][j + 1] = table[i][j] + 1 if a == b else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


def _one_edit(a: str, b: str) -> bool:
    """Whether b is a one-letter substitution, deletion, insertion or adjacent swap of a."""
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]])
    short, long = sorted((a, b), key=len)
    return len(long) - len(short) == 1 and any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


@pytest.mark.parametrize("family", LOCAL_FAMILIES)
def test_deterministic_under_a_seed(queries, family):
    perturber = Perturber(0.2)
    first = perturber.perturb_many(queries, family, seed=3)
    assert perturber.perturb_many(queries, family, seed=3) == first
    assert Perturber(0.2).perturb_many(queries, family, seed=3) == first  # a fresh instance too
    other = perturber.perturb_many(queries, family, seed=4)
    assert sum(a.text != b.text for a, b in zip(first, other, strict=True)) > len(queries) // 4


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_each_family_changes_about_rate_times_the_words_and_keeps_the_rest(queries, rate):
    perturber = Perturber(rate)
    stop = stopwords()
    for family in LOCAL_FAMILIES:
        results = perturber.perturb_many(queries, family, seed=0)
        for text, result in zip(queries, results, strict=True):
            before, after = text.split(), result.text.split()
            target = words_to_change(rate, len(before))
            assert result.words == len(before)
            assert result.changed <= max(target, 2)
            if family == "misspelling":
                changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
                assert len(changed) == result.changed
                assert all(_one_edit(a, b) for a, b in changed), changed
            elif family == "shuffle":
                assert sorted(after) == sorted(before)
                assert sum(a != b for a, b in zip(before, after, strict=True)) == result.changed
            elif family == "synonym":
                assert _kept_in_order(before, after) >= len(before) - result.changed
            else:
                assert len(after) == len(before) - result.changed
                assert _kept_in_order(before, after) == len(after)  # the rest is kept, in order
                if family == "stopword_removal":
                    removed = list((Counter(before) - Counter(after)).elements())
                    assert all(word.lower().strip(".,;:!?\"'()[]") in stop for word in removed), removed
        share = sum(r.changed for r in results) / sum(r.words for r in results)
        # Queries made of formulas have few eligible words, so the achieved share can fall short of the rate.
        low = {"misspelling": 0.6, "synonym": 0.35, "stopword_removal": 0.5}.get(family, 0.9)
        assert low * rate <= share <= rate + 0.06, (family, share)


def test_typos_are_single_edits_of_each_kind():
    import random

    rng = random.Random(0)
    for kind in TYPOS:
        for word in ("theorem", "Prime", "sum"):
            result = typo(word, rng, kind)
            assert result != word and _one_edit(word, result), (kind, word, result)
            if kind == "qwerty":
                i = next(i for i in range(len(word)) if word[i] != result[i])
                assert result[i].lower() in QWERTY_NEIGHBOURS[word[i].lower()]
    assert set(QWERTY_NEIGHBOURS["g"]) == set("fhtyvb")


def test_short_tokens_formulas_and_stopwords_are_not_misspelled():
    before = "Let $x^2+y^2=1$ and the sum of x be at most 2.".split()
    result = Perturber(1.0).perturb(" ".join(before), "misspelling", seed=0)
    after = result.text.split()
    # Only 'Let' and 'sum' are eligible: formulas, words under 3 letters and stopwords ('most') are left alone.
    assert [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b] == [0, 4]
    assert result.changed == 2 and result.words == 11


def test_wordnet_synonyms_are_real():
    from reasonembed_rag.robustness.wordnet import SOURCE, load_wordnet, pluralize

    wordnet = load_wordnet()
    assert "rapidly" in wordnet.synonyms("quickly")
    assert "whole numbers" in wordnet.synonyms("integers")  # plural read as the noun's plural, put back in plural
    assert wordnet.synonyms("numbers")[0] == "figures"  # not the Book of Numbers
    assert wordnet.synonyms("qwzxv") == []
    assert pluralize("box") == "boxes" and pluralize("city") == "cities" and pluralize("day") == "days"
    assert "WordNet 3.0" in SOURCE
    swapped = Perturber(1.0).perturb("Triangles quickly", "synonym", seed=0)
    assert swapped.changed == 2 and swapped.text.split()[0][0].isupper()


def test_bad_arguments_get_clear_errors(capsys):
    for bad in (-0.1, 1.5, "lots"):
        with pytest.raises(ValueError, match=f"rate.*{bad}"):
            check_rate(bad)
    assert check_rate(0) == 0.0 and check_rate(1) == 1.0
    with pytest.raises(ValueError, match="'typos'.*misspelling, shuffle, synonym"):
        check_families(["misspelling", "typos"])
    assert check_families("synonym,shuffle,synonym") == ["synonym", "shuffle"]
    with pytest.raises(ValueError, match="needs an LLM"):
        Perturber().perturb("a query", "paraphrase", seed=0)

    from reasonembed_rag.robustness import HotFlipSettings, RobustnessSettings
    from reasonembed_rag.robustness.poison import check_attacks, check_sizes

    with pytest.raises(ValueError, match="seeds.*0"):
        RobustnessSettings(seeds=0)
    with pytest.raises(ValueError, match="'gcg'.*query_copy, hotflip"):
        check_attacks(["gcg"])
    with pytest.raises(ValueError, match="10,x"):
        check_sizes("10,x")
    with pytest.raises(ValueError, match="steps.*0"):
        HotFlipSettings(steps=0)

    # On the command line the error comes before any data or model is loaded.
    assert main(["robustness", "--model", "bm25", "--rate", "1.5", "--data", "/nonexistent"]) == 2
    assert "1.5" in capsys.readouterr().err
    assert main(["robustness", "--model", "bm25", "--families", "misspelling,typo", "--data", "/nonexistent"]) == 2
    error = capsys.readouterr().err
    assert "'typo'" in error and ", ".join(FAMILIES) in error
    # an endpoint without a model name is refused before anything loads, naming the flag that fixes it
    assert main(["robustness", "--model", "bm25", "--llm-base-url", "http://127.0.0.1:9/v1", "--data", "/none"]) == 2
    assert "--llm-model" in capsys.readouterr().err


def test_paraphrase_is_skipped_with_a_note_without_an_llm(monkeypatch):
    from reasonembed_rag.cli.robustness import _llm
    from reasonembed_rag.llm import choose_llm

    for name in ("OPENAI_BASE_URL", "OPENAI_MODEL"):
        monkeypatch.delenv(name, raising=False)
    # paraphrasing is opt-in: the offline default LLM is not started for it, an endpoint or --llm-local is used
    with _llm(choose_llm(), ["paraphrase"]) as config:
        assert config is None
    with _llm(choose_llm(base_url="http://127.0.0.1:9/v1", model="m"), ["paraphrase"]) as config:
        assert config is not None and config.model == "m"
    with _llm(choose_llm(base_url="http://127.0.0.1:9/v1", model="m"), ["shuffle"]) as config:
        assert config is None
    from reasonembed_rag.evaluation.data import Query, RetrievalTask
    from reasonembed_rag.robustness.paraphrase import clean_reply
    from reasonembed_rag.robustness.settings import RobustnessSettings
    from reasonembed_rag.robustness.variants import build_variants

    task = RetrievalTask("t", [Query("q1", "How many primes are below 20?", ["d1"])], {"d1": "primes"}, None)
    variants = build_variants(task, RobustnessSettings(families=["paraphrase", "shuffle"], seeds=2))
    assert "no LLM configured" in variants.notes["paraphrase"]
    assert [label for label in variants.labels.values()].count(("shuffle", 1)) == 1
    assert clean_reply('Rewritten query: "Count the primes under 20."\n\nNote: kept numbers.') == (
        "Count the primes under 20."
    )
