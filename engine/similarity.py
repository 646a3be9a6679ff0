"""Strategy similarity: the mean pairwise TF-IDF cosine of each round's fresh LLM strategy
texts (SPEC §6), and which strategies are fresh."""

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import pairwise

from engine.models import StrategyRecord

# Strategies carrying one of these flags were not written by the model this round
# (a previous round's text carried over, or the condition's fallback text), so they say
# nothing about what the model reasoned and are left out of the marker indicators.
NOT_FRESH_FLAGS = frozenset({"carried_over", "fallback"})

_TOKEN_RE = re.compile(r"[a-z0-9']+")


def terms(text: str) -> Counter[str]:
    """Raw counts of the text's unigrams and bigrams (lowercase `[a-z0-9']+` words)."""
    words = _TOKEN_RE.findall(text.lower())
    counts = Counter(words)
    counts.update(f"{a} {b}" for a, b in pairwise(words))
    return counts


class SimilarityTracker:
    """Mean pairwise TF-IDF cosine similarity of each round's strategy texts.

    Document frequencies are cumulative: each round's vectors are weighted with the idf
    of every text added so far, this round's included. tf = raw count;
    idf = ln((1 + n_docs) / (1 + df)) + 1; vectors are L2-normalised; a text with no
    words has the zero vector, whose cosine with anything is 0.

    The tracker is fully determined by the texts added, in order: a resumed run rebuilds
    it with `from_rounds(earlier_rounds)` and gets the same values a straight run would.
    It keeps the document frequencies, not the texts.
    """

    def __init__(self) -> None:
        self._df: Counter[str] = Counter()
        self._n_docs = 0
        self._similarities: list[float | None] = []

    @classmethod
    def from_rounds(cls, rounds: Iterable[Sequence[str]]) -> "SimilarityTracker":
        tracker = cls()
        for texts in rounds:
            tracker.add_round(texts)
        return tracker

    @property
    def similarities(self) -> list[float | None]:
        """What `add_round` returned for each round so far."""
        return list(self._similarities)

    def add_round(self, texts: Sequence[str]) -> float | None:
        """Add a round's texts to the corpus; their mean pairwise cosine, or None if < 2."""
        counts = [terms(text) for text in texts]
        for doc in counts:
            self._df.update(doc.keys())
        self._n_docs += len(counts)
        scale = 1 + self._n_docs
        idf = {term: math.log(scale / (1 + self._df[term])) + 1 for term in set().union(*counts)}
        similarity = self._mean_pairwise_cosine([_unit({t: c * idf[t] for t, c in doc.items()}) for doc in counts])
        self._similarities.append(similarity)
        return similarity

    @staticmethod
    def _mean_pairwise_cosine(vectors: list[dict[str, float]]) -> float | None:
        """The mean of the n(n-1)/2 pairwise dot products of unit (or zero) vectors, in one
        pass over their terms: the sum over pairs i < j of u_i . u_j is, term by term,
        ((sum_i u_it)^2 - sum_i u_it^2) / 2. Pair by pair it took ~1 s a round for 100
        strategies of 600 words; this is linear in the words. A term in one vector only
        adds exactly 0, so texts with no word in common have similarity exactly 0."""
        n = len(vectors)
        if n < 2:
            return None
        sums: dict[str, float] = {}
        squares: dict[str, float] = {}
        for vector in vectors:
            for term, weight in vector.items():
                sums[term] = sums.get(term, 0.0) + weight
                squares[term] = squares.get(term, 0.0) + weight * weight
        total = sum(s * s - squares[term] for term, s in sums.items()) / 2
        # Rounding can push the cosine of equal vectors a hair above 1 (or a sum a hair below 0).
        return min(1.0, max(0.0, total / (n * (n - 1) / 2)))


def _unit(weights: dict[str, float]) -> dict[str, float]:
    """The vector scaled to length 1; the zero vector stays empty."""
    norm = math.sqrt(sum(w * w for w in weights.values()))
    if norm == 0.0:
        return {}
    return {term: w / norm for term, w in weights.items()}


def llm_strategy_texts(strategies: Iterable[StrategyRecord]) -> list[str]:
    """The texts that go into a round's similarity: every fresh LLM strategy, by agent id.

    Carried-over and fallback strategies are left out: they were not written this round,
    and identical fallback texts would fake convergence when calls fail.
    """
    llm = sorted((s for s in strategies if is_fresh(s)), key=lambda s: s.agent_id)
    return [s.strategy_text for s in llm]


def is_fresh(strategy: StrategyRecord) -> bool:
    """Written by the model this round (not carried over, not the fallback text)."""
    return strategy.kind == "llm" and not NOT_FRESH_FLAGS.intersection(strategy.flags)
