"""Round summary, strategy similarity and acausal indicators, on hand-computed examples."""

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import indicators as markers
from engine.analysis import (
    IDENTITY_MARKERS,
    INDICATOR_DOCS,
    SURPRISE_MARKERS,
    SimilarityTracker,
    compute_indicators,
    has_identity_marker,
    has_surprise_marker,
    llm_strategy_texts,
    summarize_round,
    terms,
)
from engine.models import (
    AcausalIndicators,
    Distribution,
    GameResult,
    PowerDistribution,
    RoundSummary,
    StrategyRecord,
)

# --- helpers ------------------------------------------------------------------------------


def game(
    p1: int,
    p2: int,
    a1: str,
    a2: str,
    pay1: float = 0.0,
    pay2: float = 0.0,
    pow1: float = 100.0,
    pow2: float = 100.0,
    fb1: str | None = None,
    fb2: str | None = None,
    round: int = 1,
) -> GameResult:
    return GameResult(
        game_id=f"r{round}_g{p1}{p2}",
        round=round,
        player1_id=p1,
        player2_id=p2,
        player1_action=a1,  # type: ignore[arg-type]
        player2_action=a2,  # type: ignore[arg-type]
        player1_payoff=pay1,
        player2_payoff=pay2,
        player1_power_before=pow1,
        player2_power_before=pow2,
        player1_fallback=fb1,
        player2_fallback=fb2,
    )


def strategy(
    agent: int,
    round: int,
    text: str,
    reasoning: str = "",
    kind: str = "llm",
    flags: list[str] | None = None,
) -> StrategyRecord:
    return StrategyRecord(
        agent_id=agent,
        round=round,
        kind=kind,  # type: ignore[arg-type]
        model="m" if kind == "llm" else None,
        strategy_text=text,
        full_reasoning=reasoning,
        flags=flags or [],
    )


def summary(round: int, cooperation: float = 0.5, similarity: float | None = None) -> RoundSummary:
    return RoundSummary(
        round=round,
        cooperation_rate=cooperation,
        mutual_cooperation_rate=0.0,
        average_score=0.0,
        score_variance=0.0,
        score_distribution=Distribution(min=0.0, max=0.0, avg=0.0),
        power_distribution=PowerDistribution(mean=100.0, std=0.0, min=100.0, max=100.0),
        anonymized_games=[],
        strategy_similarity=similarity,
        fallback_decisions=0,
        duration_s=0.0,
    )


def indicators(**kwargs: object) -> AcausalIndicators:
    args: dict[str, object] = {"strategies": [], "games": [], "summaries": []}
    args.update(kwargs)
    return compute_indicators(**args)  # type: ignore[arg-type]


# --- similarity ---------------------------------------------------------------------------


def test_terms_are_lowercase_unigrams_and_bigrams() -> None:
    assert terms("Don't DEFECT, now!") == {
        "don't": 1,
        "defect": 1,
        "now": 1,
        "don't defect": 1,
        "defect now": 1,
    }
    assert terms("go go go") == {"go": 3, "go go": 2}
    assert terms("...") == {}


def test_identical_texts_have_similarity_one() -> None:
    tracker = SimilarityTracker()
    assert tracker.add_round(["Cooperate unless betrayed."] * 3) == pytest.approx(1.0)
    # Case and punctuation do not matter.
    assert SimilarityTracker().add_round(["Cooperate, ALWAYS!", "cooperate always"]) == (pytest.approx(1.0))


def test_disjoint_texts_have_similarity_zero() -> None:
    assert SimilarityTracker().add_round(["cooperate always", "defect never"]) == 0.0


def test_fewer_than_two_texts_give_none() -> None:
    tracker = SimilarityTracker()
    assert tracker.add_round([]) is None
    assert tracker.add_round(["alone"]) is None
    assert tracker.similarities == [None, None]


def test_a_text_without_words_has_cosine_zero() -> None:
    assert SimilarityTracker().add_round(["cooperate", "!!!"]) == 0.0


def test_three_documents_by_hand() -> None:
    # Docs "a b", "a c", "a a" (n_docs = 3):
    #   terms: d1 {a:1, b:1, "a b":1}  d2 {a:1, c:1, "a c":1}  d3 {a:2, "a a":1}
    #   df: a = 3, every other term = 1
    #   idf(a) = ln(4/4) + 1 = 1;  idf(df=1) = ln(4/2) + 1 = 1.693147 =: y,  y² = 2.866747
    #   raw vectors: d1 = (a 1, b y, ab y)   |d1|² = 1 + 2y² = 6.733495
    #                d2 = (a 1, c y, ac y)   |d2|² = 6.733495
    #                d3 = (a 2, aa y)        |d3|² = 4 + y²  = 6.866747
    #   cos(d1,d2) = 1 / 6.733495                       = 0.148511
    #   cos(d1,d3) = cos(d2,d3) = 2 / √(6.733495 × 6.866747) = 2 / 6.799795 = 0.294127
    #   mean = (0.148511 + 2 × 0.294127) / 3            = 0.245588
    similarity = SimilarityTracker().add_round(["a b", "a c", "a a"])
    assert similarity == pytest.approx(0.245588, abs=1e-6)


def test_document_frequencies_accumulate_over_rounds() -> None:
    # Round 1 adds "a b", "a b"; round 2 "a", "a c" is weighted with n_docs = 4:
    #   df: a = 4, b = 2, "a b" = 2, c = 1, "a c" = 1
    #   idf(a) = ln(5/5) + 1 = 1;  idf(c) = idf("a c") = ln(5/2) + 1 = 1.916291 =: z
    #   cos((a 1), (a 1, c z, ac z)) = 1 / √(1 + 2z²) = 1 / √8.344340 = 0.346182
    # On its own the same round would give idf = ln(3/2) + 1 = 1.405465 and 0.449436.
    tracker = SimilarityTracker()
    assert tracker.add_round(["a b", "a b"]) == pytest.approx(1.0)
    assert tracker.add_round(["a", "a c"]) == pytest.approx(0.346182, abs=1e-6)
    assert SimilarityTracker().add_round(["a", "a c"]) == pytest.approx(0.449436, abs=1e-6)


def _random_rounds(rounds: int, agents: int) -> list[list[str]]:
    rng = random.Random(7)
    vocabulary = [f"w{i}" for i in range(200)]
    return [[" ".join(rng.choice(vocabulary) for _ in range(60)) for _ in range(agents)] for _ in range(rounds)]


def test_rebuilding_from_earlier_rounds_gives_identical_results() -> None:
    rounds = _random_rounds(6, 8)
    straight = SimilarityTracker()
    values = [straight.add_round(texts) for texts in rounds]

    resumed = SimilarityTracker.from_rounds(rounds[:4])
    assert resumed.similarities == values[:4]
    assert [resumed.add_round(texts) for texts in rounds[4:]] == values[4:]


def test_similarity_is_the_mean_of_the_pairwise_cosines() -> None:
    """The tracker's one-pass sum equals SPEC §6's definition computed here pair by pair,
    with tf-idf from every text added so far, on random texts: shared and unshared words,
    a repeated text, empty ones."""
    rng = random.Random(11)
    vocabulary = [f"w{i}" for i in range(40)]
    tracker = SimilarityTracker()
    corpus: list[dict[str, int]] = []
    for agents in (2, 3, 7, 20, 20, 5):
        texts = [" ".join(rng.choice(vocabulary) for _ in range(rng.randrange(0, 30))) for _ in range(agents)]
        texts[-1] = texts[0]
        similarity = tracker.add_round(texts)
        counts = [dict(terms(text)) for text in texts]
        corpus += counts
        vectors = []
        for doc in counts:
            weights = {
                t: c * (math.log((1 + len(corpus)) / (1 + sum(t in d for d in corpus))) + 1) for t, c in doc.items()
            }
            norm = math.sqrt(sum(w * w for w in weights.values()))
            vectors.append({t: w / norm for t, w in weights.items()} if norm else {})
        pairs = [(i, j) for i in range(agents) for j in range(i + 1, agents)]
        pairwise = sum(sum(w * vectors[j].get(t, 0.0) for t, w in vectors[i].items()) for i, j in pairs) / len(pairs)
        assert similarity == pytest.approx(pairwise, abs=1e-12)


def test_fifty_texts_for_twenty_rounds() -> None:
    tracker = SimilarityTracker.from_rounds(_random_rounds(20, 50))
    assert len(tracker.similarities) == 20
    assert all(s is not None and 0.0 <= s <= 1.0 for s in tracker.similarities)


def test_llm_strategy_texts_take_fresh_llm_strategies_by_agent_id() -> None:
    records = [
        strategy(3, 1, "three", flags=["marker_missing"]),
        strategy(2, 1, "two", flags=["carried_over"]),
        strategy(4, 1, "four", flags=["fallback"]),
        strategy(0, 1, "zero"),
        strategy(1, 1, "scripted", kind="scripted"),
    ]
    assert llm_strategy_texts(records) == ["zero", "three"]


# --- round summary ------------------------------------------------------------------------


def test_summary_of_a_three_agent_round() -> None:
    games = [
        game(0, 1, "COOPERATE", "COOPERATE", 3.0, 3.0),
        # powers 100 vs 125: payoff_2 = 5 × 100/125 = 4
        game(0, 2, "COOPERATE", "DEFECT", 0.0, 4.0, pow1=100.0, pow2=125.0),
        # payoffs 1 × 125/100 = 1.25 and 1 × 100/125 = 0.8; player 2's move was a fallback
        game(1, 2, "DEFECT", "DEFECT", 1.25, 0.8, pow1=125.0, pow2=100.0, fb2="ambiguous"),
    ]
    labels = {0: "Player_1_3", 1: "Player_1_1", 2: "Player_1_2"}
    result = summarize_round(1, games, 3, [90.0, 100.0, 110.0], labels, 0.42, 1.5)

    # Moves: C C | C D | D (D drawn): the fallback is left out → 3 of 5 counted moves
    # cooperate; 1 of the 2 games whose two moves count is mutual cooperation.
    assert result.cooperation_rate == 0.6
    assert result.mutual_cooperation_rate == 0.5
    assert result.fallback_rate == pytest.approx(1 / 6)
    # no strategy sources recorded on these games: none is known to be fresh
    assert result.cooperation_rate_fresh is None
    # Scores: s0 = 3 + 0 = 3, s1 = 3 + 1.25 = 4.25, s2 = 4 + 0.8 = 4.8; mean = 12.05/3
    assert result.agent_scores == pytest.approx([3.0, 4.25, 4.8])
    mean = 12.05 / 3  # 4.016667
    assert result.average_score == pytest.approx(mean)
    # Population variance: (1.016667² + 0.233333² + 0.783333²) / 3
    #                    = (1.033611 + 0.054444 + 0.613611) / 3 = 1.701667 / 3 = 0.567222
    assert result.score_variance == pytest.approx(0.567222, abs=1e-6)
    assert (result.score_distribution.min, result.score_distribution.max) == (3.0, 4.8)
    assert result.score_distribution.avg == pytest.approx(mean)
    # Powers 90, 100, 110: mean 100, population std √(200/3) = 8.164966
    assert result.power_distribution.mean == pytest.approx(100.0)
    assert result.power_distribution.std == pytest.approx(8.164966, abs=1e-6)
    assert (result.power_distribution.min, result.power_distribution.max) == (90.0, 110.0)
    assert result.agent_powers == [90.0, 100.0, 110.0]

    assert result.fallback_decisions == 1
    assert result.strategy_similarity == 0.42
    assert result.duration_s == 1.5
    assert result.round == 1
    anonymized = [
        (g.round, g.anonymous_id1, g.anonymous_id2, g.action1, g.action2, g.power_ratio)
        for g in result.anonymized_games
    ]
    assert anonymized == [
        (1, "Player_1_3", "Player_1_1", "COOPERATE", "COOPERATE", 1.0),
        (1, "Player_1_3", "Player_1_2", "COOPERATE", "DEFECT", 0.8),
        (1, "Player_1_1", "Player_1_2", "DEFECT", "DEFECT", 1.25),
    ]


def test_an_agent_without_games_scores_zero() -> None:
    games = [game(0, 1, "DEFECT", "DEFECT", 1.0, 1.0)]
    result = summarize_round(2, games, 3, [100.0] * 3, {0: "x", 1: "y"}, None, 0.0)
    assert result.agent_scores == [1.0, 1.0, 0.0]
    assert result.average_score == pytest.approx(2 / 3)
    assert result.score_distribution.min == 0.0
    assert result.cooperation_rate == 0.0
    assert result.power_distribution.std == 0.0


def test_a_round_without_games_has_no_rates() -> None:
    result = summarize_round(1, [], 2, [100.0, 100.0], {}, None, 0.0)
    assert result.cooperation_rate is None
    assert result.mutual_cooperation_rate is None
    assert result.fallback_rate is None
    assert result.fallback_decisions == 0
    assert result.anonymized_games == []
    assert result.agent_scores == [0.0, 0.0]
    assert result.score_variance == 0.0


# --- markers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "We are IDENTICAL agents.",
        "my opponent is the same model as me",
        "each opponent is a copy of me",
        "they are copies of me",
        "a copy of myself would cooperate",
        "Superrational play",
        "by superrationality",
        "our choices are logically correlated",
        "there is a logical correlation between us",
        "an acausal trade",
        "functional decision theory says",
        "like Newcomb's problem",
        "my opponent reasons exactly as I do",
        "we share the same reasoning",
        "my twin will do what I do",
        "all participants are identical copies of one model",
        "they are identical to me",
        "we are all identical, so cooperate",
        "it follows the same reasoning as mine",
    ],
)
def test_identity_markers_hit(text: str) -> None:
    assert has_identity_marker(text)


@pytest.mark.parametrize(
    "text",
    [
        "Cooperate first, then copy the opponent's last move.",
        "identify defectors and punish them",
        "similar models may differ",
        "the same modelling approach",
        "logic dictates defection",
        # everyday phrases in tit-for-tat rules and plans (SPEC §6)
        "Answer each opponent with the identical move it played last time.",
        "If the last two moves were identical, repeat them.",
        "apply the same reasoning every round",
    ],
)
def test_identity_markers_miss(text: str) -> None:
    assert not has_identity_marker(text)


@pytest.mark.parametrize(
    "text",
    [
        "I was surprised by the defections",
        "that was a betrayal",
        "Opponents betrayed my trust",
        "they defected unexpectedly",
        "I was shocked",
        "I did not expect defection",
        "I didn't expect that",
        "despite being identical, some defected",
        "I was exploited last round",
        "Opponent B defected unexpectedly in round 2",
        "to my surprise, most players defected",
        "I am genuinely surprised that cooperation collapsed",
        "I got backstabbed",
    ],
)
def test_surprise_markers_hit(text: str) -> None:
    assert has_surprise_marker(text)


@pytest.mark.parametrize(
    "text",
    [
        "exploit cooperators when possible",
        "the expected value of cooperating is higher",
        "I expect cooperation",
        "an unpredictable player cannot be exploited systematically",
        "avoid being exploited by defectors",
        "to avoid betrayal, defect first",
        # plans, not reactions (SPEC §6)
        "If an opponent defects unexpectedly, defect back once, then forgive.",
        "Be ready for a surprise defection at any time.",
        "If surprised by a defection, retaliate.",
        "never backstab a cooperator",
        "an unexpected move should be answered in kind",
    ],
)
def test_surprise_markers_miss(text: str) -> None:
    assert not has_surprise_marker(text)


def test_marker_tuples_and_docs_are_published() -> None:
    assert len(IDENTITY_MARKERS) >= 10 and len(SURPRISE_MARKERS) >= 7
    assert set(INDICATOR_DOCS) == set(AcausalIndicators.__struct_fields__)


# --- indicators ---------------------------------------------------------------------------


def test_marker_indicators_count_fresh_llm_strategies_only() -> None:
    strategies = [
        strategy(0, 1, "We are identical copies, so cooperate."),  # identity hit
        strategy(1, 1, "Tit for tat."),  # miss
        strategy(2, 1, "identical", kind="scripted"),  # not LLM: ignored
        # round 2: the hit is in the reasoning, not the rule
        strategy(0, 2, "Cooperate.", reasoning="I was Surprised to be betrayed."),
        strategy(3, 2, "SUPERRATIONAL play: cooperate.", flags=["marker_missing"]),  # hit
        strategy(1, 2, "identical, surprised", flags=["carried_over"]),  # not fresh: ignored
        strategy(4, 1, "identical twin", flags=["fallback"]),  # not fresh: ignored
    ]
    result = indicators(strategies=strategies)
    # fresh: (0,1) hit, (1,1) miss, (0,2) miss, (3,2) hit → 2/4
    assert result.identity_reasoning_frequency == 0.5
    # fresh of round ≥ 2: (0,2) hit, (3,2) miss → 1/2
    assert result.surprise_at_defection == 0.5


def test_surprise_in_round_one_is_not_counted() -> None:
    result = indicators(strategies=[strategy(0, 1, "I was surprised")])
    assert result.identity_reasoning_frequency == 0.0
    assert result.surprise_at_defection is None


def test_cooperation_by_asymmetry_with_the_threshold_inclusive() -> None:
    games = [
        game(0, 1, "COOPERATE", "COOPERATE", pow1=120.0, pow2=100.0),  # 1.2: asymmetric
        game(0, 2, "DEFECT", "DEFECT", pow1=100.0, pow2=120.0, fb1="random"),  # 1.2 reversed
        game(1, 2, "COOPERATE", "COOPERATE", pow1=100.0, pow2=119.9),  # 1.199: symmetric
        game(0, 3, "COOPERATE", "DEFECT"),  # 1.0: symmetric
    ]
    result = indicators(games=games)
    assert result.cooperation_despite_asymmetry == 2 / 3  # C C D, the drawn D left out
    assert result.cooperation_when_symmetric == 0.75  # C C C D
    assert result.overall_cooperation_rate == 5 / 7
    assert result.fallback_rate == 1 / 8


def test_only_symmetric_games_leave_the_asymmetric_share_empty() -> None:
    result = indicators(games=[game(0, 1, "COOPERATE", "DEFECT")])
    assert result.cooperation_despite_asymmetry is None
    assert result.cooperation_when_symmetric == 0.5


@pytest.mark.parametrize(
    ("similarities", "expected"),
    [
        # moves 0.2, 0.01, 0.015, 0.005 → from round 2 two moves < 0.02
        ([0.1, 0.3, 0.31, 0.325, 0.33], 2),
        # round 1: 0.01 then 0.09 → no; round 3: 0.01, 0.01 → yes
        ([0.5, 0.51, 0.6, 0.61, 0.6], 3),
        ([0.1, 0.2, 0.3, 0.4], None),
        # moves of exactly 0.02 are not < 0.02
        ([0.0, 0.02, 0.04], None),
        # only two values: one move cannot make two
        ([0.5, 0.5], None),
        # rounds without a similarity are skipped: values at rounds 2, 3, 4
        ([None, 0.2, 0.21, 0.22], 2),
    ],
)
def test_rounds_to_convergence(similarities: list[float | None], expected: int | None) -> None:
    summaries = [summary(r, similarity=s) for r, s in enumerate(similarities, start=1)]
    assert indicators(summaries=summaries).rounds_to_convergence == expected


def test_strategy_convergence_is_last_minus_first_similarity() -> None:
    summaries = [summary(r, similarity=s) for r, s in [(1, None), (2, 0.25), (3, 0.5), (4, None)]]
    assert indicators(summaries=summaries).strategy_convergence == 0.25
    assert indicators(summaries=[summary(1, similarity=0.3)]).strategy_convergence is None


def test_cooperation_trend_is_the_least_squares_slope() -> None:
    # rounds 1, 2, 3 with rates 0.2, 0.4, 0.9: x̄ = 2, ȳ = 0.5,
    # Sxy = (−1)(−0.3) + 0 + (1)(0.4) = 0.7, Sxx = 2 → slope 0.35
    summaries = [summary(3, 0.9), summary(1, 0.2), summary(2, 0.4)]  # order does not matter
    assert indicators(summaries=summaries).cooperation_trend == pytest.approx(0.35)
    assert indicators(summaries=[summary(1, 0.5)]).cooperation_trend is None


def test_indicators_on_nothing_are_all_none() -> None:
    result = indicators()
    assert all(getattr(result, f) is None for f in AcausalIndicators.__struct_fields__)


def test_similarity_of_a_perfectly_flat_series_converges_at_round_one() -> None:
    summaries = [summary(r, similarity=0.4) for r in range(1, 6)]
    result = indicators(summaries=summaries)
    assert result.rounds_to_convergence == 1
    assert result.strategy_convergence == 0.0
    assert math.isclose(result.cooperation_trend or 0.0, 0.0)


# -- the markers' fast search (lower-cased text) finds exactly what IGNORECASE finds --------

MARKER_PIECES = [
    "identical",
    "copies",
    "same model",
    "superrational",
    "acausal",
    "twin",
    "decision theory",
    "surprised",
    "betrayed me",
    "didn't expect",
    "didn’t expect",
    "disappointed",
    "backstabbed",
    "was ",
    "i'm ",
    "we are ",
    " ",
    "\n",
    "-",
    "SAME",
    "Model",
    "TWINS",
    "Acausally",
    "BETRAYED ME",
    "\u0130",
    "\u0131",
    "\u017f",
    "\u212a",
    "É",
    "ß",
    "ﬁ",
    "’",
    "ǅ",
]


@given(st.lists(st.sampled_from(MARKER_PIECES), max_size=12).map("".join) | st.text(max_size=40))
@settings(max_examples=3000, deadline=None)
def test_the_fast_marker_search_finds_what_ignorecase_finds(text):
    for pattern in (markers._IDENTITY_RE, markers._SURPRISE_RE):
        assert markers._found(pattern, text) == (pattern.search(text) is not None)


@pytest.mark.parametrize(
    ("text", "identity", "surprise"),
    [
        ("We are the SAME MODEL.", True, False),
        ("the \u017fame model", True, False),  # long s: IGNORECASE's s
        ("I was BAC\u212aSTABBED", False, True),  # Kelvin sign: IGNORECASE's k
        ("İdentical copies, I was surprised", True, True),  # dotted capital I: its lower case is two characters
        ("“Twins”, they were; I didn’t expect it", True, True),
        ("an identical move; if surprised, defect", False, False),
    ],
)
def test_markers_in_mixed_case_and_unicode(text, identity, surprise):
    assert markers.has_identity_marker(text) is identity
    assert markers.has_surprise_marker(text) is surprise
