"""One redactor for URLs and free text (issue 13, fault 9), used by sources and artifacts alike."""

from __future__ import annotations

import pytest

from framepipe.artifacts.redact import redact_text, redact_url
from framepipe.sources.readers import redact

CASES = [
    ("rtsp://user:p@ss@cam/live", "rtsp://***@cam/live"),
    ("rtsp://user:pa/ss@cam/live", "rtsp://***@cam/live"),
    ("rtsp://cam/live?token=SECRET", "rtsp://cam/live?token=***"),
    ("rtsp://admin:x@10.0.0.2:554/live?channel=1&api_key=K3Y", "rtsp://***@10.0.0.2:554/live?channel=1&api_key=***"),
    ("rtsp://cam:554/live", "rtsp://cam:554/live"),
    ("clip.mp4", "clip.mp4"),
    (0, "0"),
]


@pytest.mark.parametrize(("reference", "shown"), CASES)
def test_source_references_lose_their_credentials(reference: str | int, shown: str) -> None:
    assert redact(reference) == shown


@pytest.mark.parametrize(("reference", "shown"), CASES[:5])
def test_the_artifacts_redactor_agrees(reference: str, shown: str) -> None:
    assert redact_url(reference) == shown


def test_free_text_loses_credentials_and_tokens() -> None:
    text = "could not open rtsp://admin:pa/ss@10.0.0.2/live (token=SECRET) after 3 tries"
    cleaned = redact_text(text)
    assert "pa/ss" not in cleaned and "admin" not in cleaned and "SECRET" not in cleaned
    assert "10.0.0.2/live" in cleaned and "after 3 tries" in cleaned


def test_a_short_secret_is_redacted_where_it_stands_not_inside_words() -> None:
    from framepipe._internal.redact import redact_text

    text = redact_text("Max retries exceeded for key x (x)", ("x",))
    assert text == "Max retries exceeded for key *** (***)"
    assert redact_text("prefix-LONGSECRET1-suffix and LONGSECRET1z", ("LONGSECRET1",)) == "prefix-***-suffix and ***z"
