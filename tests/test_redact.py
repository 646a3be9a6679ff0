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
