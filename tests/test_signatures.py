"""HubSpot webhook signatures: the published v1 vector, v2, v3 (URI decoding, time window)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ambac_hubspot_plugin._signatures import (
    decode_v3_uri,
    expected_v1,
    expected_v2,
    expected_v3,
    verify_signature,
)
from ambac_hubspot_plugin.errors import WebhookSignatureError
from ambac_hubspot_plugin.sandbox import sign_v1, sign_v3

VECTOR_SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
VECTOR_BODY = (
    b'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
    b'"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,'
    b'"changeSource":"CRM","changeFlag":"NEW","appId":54321}]'
)
VECTOR_SIGNATURE = "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
URI = "https://tracker.example.com/plugins/hubspot/webhooks/7"


def _ms(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1000))


def _verify(headers: dict[str, str], *, body: bytes = VECTOR_BODY, secret: str = VECTOR_SECRET,
            uri: str = URI, now: datetime = NOW) -> str:
    return verify_signature(secret=secret, method="POST", uri=uri, headers=headers, body=body,
                            now=now)


def test_published_v1_vector() -> None:
    """HubSpot's published v1 example hashes to its published signature and verifies."""
    assert expected_v1(VECTOR_SECRET, VECTOR_BODY) == VECTOR_SIGNATURE
    headers = {"X-HubSpot-Signature": VECTOR_SIGNATURE, "X-HubSpot-Signature-Version": "v1"}
    assert _verify(headers) == "v1"


def test_header_names_are_case_insensitive() -> None:
    """Headers match whatever case the server or proxy gives them."""
    headers = {"x-hubspot-signature": VECTOR_SIGNATURE.upper(), "X-HUBSPOT-SIGNATURE-VERSION": "V1"}
    assert _verify(headers) == "v1"


def test_v2_covers_method_uri_and_body() -> None:
    """A v2 signature verifies for its URI only."""
    signature = expected_v2(VECTOR_SECRET, "POST", URI, VECTOR_BODY)
    headers = {"X-HubSpot-Signature": signature, "X-HubSpot-Signature-Version": "v2"}
    assert _verify(headers) == "v2"
    with pytest.raises(WebhookSignatureError, match="v2 signature does not match"):
        _verify(headers, uri=URI + "?x=1")


def test_v3_matches_the_sandbox_sender() -> None:
    """Our v3 expectation equals what the sandbox's HubSpot-like sender signs."""
    timestamp = _ms(NOW)
    signature = sign_v3(VECTOR_SECRET, "POST", URI, VECTOR_BODY, timestamp)
    assert expected_v3(VECTOR_SECRET, "POST", URI, VECTOR_BODY, timestamp) == signature
    headers = {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": timestamp}
    assert _verify(headers) == "v3"


def test_v3_decodes_exactly_hubspots_escapes() -> None:
    """The listed escapes are decoded before hashing (either case); others stay encoded."""
    assert decode_v3_uri("https://h/p%3Ax%2fy%3F%40%21%24%27%28%29%2A%2C%3B%20%25") == (
        "https://h/p:x/y?@!$'()*,;%20%25")
    encoded = URI + "?next=%2Fdeals%3A1&space=%20"
    timestamp = _ms(NOW)
    signature = sign_v3(VECTOR_SECRET, "POST", URI + "?next=/deals:1&space=%20", VECTOR_BODY,
                        timestamp)
    headers = {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": timestamp}
    assert _verify(headers, uri=encoded) == "v3"


@pytest.mark.parametrize("offset", [timedelta(minutes=5, seconds=1),
                                    -timedelta(minutes=5, seconds=1)])
def test_v3_outside_five_minutes_is_refused(offset: timedelta) -> None:
    """A v3 timestamp more than five minutes old or ahead is refused even when signed right."""
    timestamp = _ms(NOW + offset)
    signature = sign_v3(VECTOR_SECRET, "POST", URI, VECTOR_BODY, timestamp)
    headers = {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": timestamp}
    with pytest.raises(WebhookSignatureError, match=r"old|future"):
        _verify(headers)
    # Just inside the window passes.
    inside = NOW + (offset * 299 / 301)
    assert _verify({"X-HubSpot-Signature-v3": sign_v3(VECTOR_SECRET, "POST", URI, VECTOR_BODY,
                                                      _ms(inside)),
                    "X-HubSpot-Request-Timestamp": _ms(inside)}) == "v3"


def test_a_bad_v3_is_not_rescued_by_a_good_v1() -> None:
    """When the v3 header is present it decides, even next to a valid v1 signature."""
    headers = {"X-HubSpot-Signature-v3": "AAAA", "X-HubSpot-Request-Timestamp": _ms(NOW),
               "X-HubSpot-Signature": VECTOR_SIGNATURE, "X-HubSpot-Signature-Version": "v1"}
    with pytest.raises(WebhookSignatureError, match="v3 signature does not match"):
        _verify(headers)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "unsigned"),
        ({"X-HubSpot-Signature": VECTOR_SIGNATURE}, "not v1 or v2"),
        ({"X-HubSpot-Signature": VECTOR_SIGNATURE, "X-HubSpot-Signature-Version": "v9"},
         "not v1 or v2"),
        ({"X-HubSpot-Signature-v3": "x"}, "Timestamp"),
        ({"X-HubSpot-Signature-v3": "x", "X-HubSpot-Request-Timestamp": "soon"}, "Timestamp"),
        ({"X-HubSpot-Signature": "0" * 64, "X-HubSpot-Signature-Version": "v1"}, "does not match"),
        ({"X-HubSpot-Signature": "x" * 5000, "X-HubSpot-Signature-Version": "v1"}, "characters"),
    ],
)
def test_missing_or_malformed_signatures_are_refused(headers: dict[str, str], reason: str) -> None:
    """Unsigned, unknown-version, timestamp-less and wrong signatures raise with a reason."""
    with pytest.raises(WebhookSignatureError, match=reason):
        _verify(headers)


def test_wrong_secret_and_tampered_body_fail_and_never_show_the_secret() -> None:
    """A signature made with another secret, or over another body, fails; the message hides
    the secret."""
    good = {"X-HubSpot-Signature": sign_v1("other-secret", VECTOR_BODY),
            "X-HubSpot-Signature-Version": "v1"}
    with pytest.raises(WebhookSignatureError) as caught:
        _verify(good)
    assert VECTOR_SECRET not in str(caught.value)
    headers = {"X-HubSpot-Signature": VECTOR_SIGNATURE, "X-HubSpot-Signature-Version": "v1"}
    with pytest.raises(WebhookSignatureError):
        _verify(headers, body=VECTOR_BODY.replace(b"123", b"124"))


def test_no_secret_configured_is_an_error() -> None:
    """An empty secret never verifies anything (it would accept forged v1 signatures)."""
    headers = {"X-HubSpot-Signature": expected_v1("", VECTOR_BODY),
               "X-HubSpot-Signature-Version": "v1"}
    with pytest.raises(WebhookSignatureError, match="no webhook client secret"):
        _verify(headers, secret="")


def test_an_endpoint_can_refuse_v1_and_say_which_versions_it_expects() -> None:
    """With versions=("v3", "v2"), even a matching v1 signature is refused naming v3 and v2."""
    headers = {"X-HubSpot-Signature": VECTOR_SIGNATURE, "X-HubSpot-Signature-Version": "v1"}
    with pytest.raises(WebhookSignatureError) as caught:
        verify_signature(secret=VECTOR_SECRET, method="POST", uri=URI, headers=headers,
                         body=VECTOR_BODY, now=NOW, versions=("v3", "v2"))
    assert "v1 signatures are not accepted" in str(caught.value)
    assert "X-HubSpot-Signature-v3" in str(caught.value) and "v2" in str(caught.value)
    v2 = {"X-HubSpot-Signature": expected_v2(VECTOR_SECRET, "POST", URI, VECTOR_BODY),
          "X-HubSpot-Signature-Version": "v2"}
    assert verify_signature(secret=VECTOR_SECRET, method="POST", uri=URI, headers=v2,
                            body=VECTOR_BODY, now=NOW, versions=("v3", "v2")) == "v2"
