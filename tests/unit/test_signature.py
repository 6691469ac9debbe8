import base64
import hashlib
import hmac

from whatsapp_core.signature import sign, verify_signature

SECRET = "app-secret"
BODY = b'{"object":"whatsapp_business_account","entry":[]}'


def test_sign_is_hmac_sha256_hex_of_raw_body():
    expected = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert sign(BODY, SECRET) == "sha256=" + expected


def test_valid_signature_accepted_in_either_hex_case():
    assert verify_signature(BODY, sign(BODY, SECRET), SECRET)
    assert verify_signature(BODY, "sha256=" + sign(BODY, SECRET)[7:].upper(), SECRET)


def test_missing_or_empty_signature_refused():
    assert not verify_signature(BODY, None, SECRET)
    assert not verify_signature(BODY, "", SECRET)


def test_signature_over_other_body_refused():
    assert not verify_signature(BODY + b" ", sign(BODY, SECRET), SECRET)


def test_signature_with_other_secret_refused():
    assert not verify_signature(BODY, sign(BODY, "other"), SECRET)


def test_truncated_prefixless_and_other_algorithm_refused():
    good = sign(BODY, SECRET)
    assert not verify_signature(BODY, good[:-1], SECRET)
    assert not verify_signature(BODY, good[7:], SECRET)
    assert not verify_signature(BODY, "sha1=" + good[7:], SECRET)
    assert not verify_signature(BODY, good + "0", SECRET)


def test_differently_encoded_digest_refused():
    digest = hmac.new(SECRET.encode(), BODY, hashlib.sha256).digest()
    assert not verify_signature(BODY, "sha256=" + base64.b64encode(digest).decode(), SECRET)
    spaced = "sha256=" + " ".join(sign(BODY, SECRET)[7:][i : i + 2] for i in range(0, 64, 2))
    assert not verify_signature(BODY, spaced, SECRET)


def test_empty_secret_never_verifies():
    assert not verify_signature(BODY, sign(BODY, ""), "")
