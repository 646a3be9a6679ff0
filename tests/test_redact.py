"""The key cut out of text in every form it can take."""

from urllib.parse import quote, quote_plus

import pytest

from engine.redact import MASK, Redactor

KEY = "sk-or-v1-ab+cd/ef=0123456789ABCDEFxyz"


@pytest.mark.parametrize(
    "shown",
    [
        KEY,
        quote(KEY, safe=""),
        quote_plus(KEY),
        KEY[-16:],
        KEY[5:13],
        KEY[:8],
        "".join(f"%{b:02X}" for b in KEY.encode()),
        "".join(f"%{b:02x}" for b in KEY.encode()[3:20]),
    ],
)
def test_every_form_of_the_key_is_masked(shown):
    text = Redactor(KEY)(f"before {shown} after")
    assert text == f"before {MASK} after"


def test_pieces_shorter_than_eight_characters_stay():
    assert Redactor(KEY)(f"x {KEY[:7]} y") == f"x {KEY[:7]} y"


def test_several_hits_and_overlaps_are_masked_once_each():
    redact = Redactor(KEY)
    assert redact(f"{KEY}{KEY} and {KEY[-9:]}.") == f"{MASK} and {MASK}."


def test_a_short_key_is_masked_whole():
    assert Redactor("abc123")("token abc123 here") == f"token {MASK} here"


@pytest.mark.parametrize("secret", [None, ""])
def test_no_key_changes_nothing(secret):
    assert Redactor(secret)("sk-or-v1-anything") == "sk-or-v1-anything"


def test_the_quick_test_never_lets_a_piece_through():
    """`may_hold_a_piece` only skips the full search: for any key and any text made of bits
    of it (in every encoding) and other text, the result equals the full search's."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    alphabet = st.characters(codec="utf-8", exclude_categories=("Cs",))

    @settings(max_examples=500, deadline=None)
    @given(st.text(alphabet, min_size=1, max_size=40), st.data())
    def check(key: str, data) -> None:
        redact = Redactor(key)
        encodings = [key, quote(key, safe=""), quote_plus(key), "".join(f"%{b:02X}" for b in key.encode())]
        parts = data.draw(
            st.lists(
                st.one_of(
                    st.text(alphabet, max_size=12),
                    st.sampled_from(encodings).flatmap(
                        lambda e: st.tuples(st.integers(0, len(e)), st.integers(0, len(e))).map(
                            lambda ab: e[min(ab) : max(ab)]
                        )
                    ),
                ),
                max_size=6,
            )
        )
        text = "".join(parts)
        assert redact(text) == redact.mask(text)

    check()


def test_a_reply_without_the_key_skips_the_full_search(monkeypatch):
    redact = Redactor("sk-or-v1-" + "0f3a9c" * 10)
    monkeypatch.setattr(redact, "mask", lambda text: "searched")
    assert redact("Reciprocity rewards cooperators; 1234 and abcdef are short.") == (
        "Reciprocity rewards cooperators; 1234 and abcdef are short."
    )
    assert redact("a run 0f3a9c0f of the key") == "searched"
