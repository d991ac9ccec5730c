import base64
import hashlib

import orjson
import pytest

from prsm_events.events.dead_letter import DEAD_LETTER_MIN_BYTES, MAX_KEY_BYTES, DeadLetter


def letter(original: bytes | None, key: bytes | None = b"acme") -> DeadLetter:
    return DeadLetter("oversized", "oversized: too big", "prsm.usage", 1, 99, key, original)


def test_a_small_original_travels_whole_as_text_and_base64():
    doc = orjson.loads(letter(b'{"a": 1}').to_json(max_bytes=10_000))
    assert (doc["original"], base64.b64decode(doc["original_base64"])) == ('{"a": 1}', b'{"a": 1}')
    assert (doc["truncated"], doc["original_bytes"]) == (False, 8)
    assert doc["original_sha256"] == hashlib.sha256(b'{"a": 1}').hexdigest()


@pytest.mark.parametrize("original", [
    b"x" * 200_000,
    ('\u00e9"\\\x01' * 50_000).encode(),  # every character escaped, some to six bytes
    bytes(range(256)) * 800,  # not UTF-8: carried as base64
], ids=["ascii", "escapes", "binary"])
@pytest.mark.parametrize("max_bytes", [DEAD_LETTER_MIN_BYTES, 50_000])
def test_a_large_original_is_cut_to_fit_with_its_size_and_hash(original, max_bytes):
    raw = letter(original).to_json(max_bytes=max_bytes)
    assert max_bytes - 64 <= len(raw) <= max_bytes  # cut to fit, and not much shorter
    doc = orjson.loads(raw)
    assert doc["truncated"] is True
    assert doc["original_bytes"] == len(original)
    assert doc["original_sha256"] == hashlib.sha256(original).hexdigest()
    if doc["original"] is not None:
        assert original.decode().startswith(doc["original"]) and doc["original_base64"] is None
    else:
        assert original.startswith(base64.b64decode(doc["original_base64"]))


def test_a_huge_key_is_cut_in_the_letter_and_as_its_record_key():
    dl = letter(b"{}", key=b"k" * 100_000)
    assert dl.record_key == b"k" * MAX_KEY_BYTES
    doc = orjson.loads(dl.to_json(max_bytes=DEAD_LETTER_MIN_BYTES))
    assert doc["key"] == "k" * MAX_KEY_BYTES and doc["original"] == "{}"


def test_the_summary_has_no_original_but_says_what_it_was():
    doc = orjson.loads(letter(b"x" * 5000).summary_json())
    assert (doc["original"], doc["original_base64"], doc["truncated"]) == (None, None, True)
    assert doc["original_bytes"] == 5000
    assert orjson.loads(letter(None).summary_json())["truncated"] is False
