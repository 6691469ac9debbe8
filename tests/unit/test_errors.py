"""The error catalogue (whatsapp_core.errors) against section 5 of the fact sheet."""

from __future__ import annotations

import pytest

from whatsapp_core.errors import (
    CATALOGUE,
    ErrorFamily,
    ErrorInfo,
    RecommendedAction,
    RetryScope,
    lookup,
)

SECTION_5_CODES = (
    0,
    190,
    3,
    10,
    200,
    131005,
    4,
    80007,
    130429,
    131048,
    131056,
    131049,
    130472,
    131050,
    131026,
    131047,
    131051,
    131052,
    131053,
    131000,
    131016,
    1,
    2,
    133004,
    131057,
    131008,
    131009,
    100,
    33,
    135000,
    131021,
    131030,
    131031,
    368,
    130497,
    131042,
    131045,
    133010,
    132000,
    132001,
    132005,
    132007,
    132012,
    132015,
    132016,
    132068,
    132069,
    130501,
    131060,
    131020,
    131041,
    131037,
    131062,
    131063,
    131055,
    131064,
    137000,
    130403,
)

RETRYABLE = {130429, 131056, 80007, 4, 131000, 131016, 1, 2, 133004, 131057, 132069}


@pytest.mark.parametrize("code", SECTION_5_CODES)
def test_every_fact_sheet_code_has_a_complete_record(code):
    info = lookup(code)
    assert info.code == code
    assert info.family is not ErrorFamily.UNKNOWN
    assert info.title and len(info.explanation) > 40
    assert isinstance(info.action, RecommendedAction)


def test_retryable_set_is_exactly_the_fact_sheet_r_codes():
    assert {code for code, info in CATALOGUE.items() if info.retryable} == RETRYABLE


@pytest.mark.parametrize("code", [131047, 131026, 131050, 133010, 368, 190, 0, 132000, 132016])
def test_codes_that_a_retry_cannot_fix(code):
    info = lookup(code)
    assert info.retryable is False
    assert info.scope is RetryScope.NONE


def test_template_codes_are_not_retryable_except_flow_throttling():
    for code, info in CATALOGUE.items():
        if 132000 <= code < 133000:
            assert info.retryable is (code == 132069), code


def test_pair_rate_limit_throttles_only_that_contact():
    info = lookup(131056)
    assert info.scope is RetryScope.CONTACT
    assert info.action is RecommendedAction.BACK_OFF
    assert {i.scope for c, i in CATALOGUE.items() if i.retryable and c != 131056} == {
        RetryScope.REQUEST
    }


def test_flow_throttling_is_retried_later_not_now():
    info = lookup(132069)
    assert info.retryable and info.retry_after >= 3600
    assert all(i.retry_after == 0 for c, i in CATALOGUE.items() if c != 132069)


@pytest.mark.parametrize(
    ("code", "family", "action"),
    [
        (0, ErrorFamily.AUTHORIZATION, RecommendedAction.REFRESH_TOKEN),
        (190, ErrorFamily.AUTHORIZATION, RecommendedAction.REFRESH_TOKEN),
        (10, ErrorFamily.PERMISSION, RecommendedAction.FIX_PERMISSIONS),
        (130429, ErrorFamily.THROTTLING, RecommendedAction.BACK_OFF),
        (131047, ErrorFamily.WINDOW, RecommendedAction.SEND_TEMPLATE),
        (131049, ErrorFamily.DELIVERY, RecommendedAction.WAIT_24H_BEFORE_MARKETING),
        (131050, ErrorFamily.DELIVERY, RecommendedAction.RECORD_OPT_OUT),
        (131026, ErrorFamily.DELIVERY, RecommendedAction.REACH_CONTACT_OTHER_CHANNEL),
        (132001, ErrorFamily.TEMPLATE, RecommendedAction.FIX_TEMPLATE),
        (131053, ErrorFamily.MEDIA, RecommendedAction.FIX_MEDIA),
        (131052, ErrorFamily.MEDIA, RecommendedAction.ASK_TO_RESEND),
        (131009, ErrorFamily.REQUEST, RecommendedAction.FIX_REQUEST),
        (131000, ErrorFamily.SERVICE, RecommendedAction.CONTACT_SUPPORT),
        (133010, ErrorFamily.ACCOUNT, RecommendedAction.REGISTER_NUMBER),
        (368, ErrorFamily.INTEGRITY, RecommendedAction.CHECK_ACCOUNT),
        (132068, ErrorFamily.FLOWS, RecommendedAction.FIX_FLOW),
        (131041, ErrorFamily.GROUP, RecommendedAction.FIX_REQUEST),
        (131060, ErrorFamily.INBOUND, RecommendedAction.ASK_TO_RESEND),
    ],
)
def test_family_and_recommended_action(code, family, action):
    info = lookup(code)
    assert (info.family, info.action) == (family, action)


def test_undeliverable_explains_the_help_centre_causes_and_its_three_actions():
    info = lookup(131026)
    text = info.explanation.lower()
    for cause in (
        "30 days",
        "blocked the business",
        "sanctioned country",
        "delivered webhook",
        "several devices",
    ):
        assert cause in text, cause
    assert (info.action, *info.fallback_actions) == (
        RecommendedAction.REACH_CONTACT_OTHER_CHANNEL,
        RecommendedAction.ASK_CONTACT_TO_WRITE_AGAIN,
        RecommendedAction.RESEND_INSIDE_WINDOW,
    )


def test_outside_window_falls_back_to_waiting_for_the_contact():
    info = lookup(131047)
    assert info.fallback_actions == (
        RecommendedAction.ASK_CONTACT_TO_WRITE_AGAIN,
        RecommendedAction.RESEND_INSIDE_WINDOW,
    )
    assert "24 hours" in info.explanation


@pytest.mark.parametrize("code", [200, 201, 250, 299])
def test_permission_range_maps_to_the_permission_record(code):
    info = lookup(code)
    assert info.code == code
    assert info.family is ErrorFamily.PERMISSION
    assert info.action is RecommendedAction.FIX_PERMISSIONS


@pytest.mark.parametrize("code", [199, 300, 999999, -5])
def test_unknown_code_returns_a_generic_record_with_that_code(code):
    info = lookup(code)
    assert info.code == code
    assert info.family is ErrorFamily.UNKNOWN
    assert info.retryable is False
    assert info.action is RecommendedAction.CONTACT_SUPPORT


def test_missing_code_returns_the_generic_record():
    info = lookup(None)
    assert info.code is None and info.family is ErrorFamily.UNKNOWN


def test_records_are_immutable_and_keyed_by_their_code():
    info = lookup(130429)
    with pytest.raises(AttributeError):
        info.retryable = False  # type: ignore[misc]
    assert all(code == record.code for code, record in CATALOGUE.items())
    assert all(isinstance(record, ErrorInfo) for record in CATALOGUE.values())
    with pytest.raises(TypeError):
        CATALOGUE[1] = info  # type: ignore[index]


def test_enums_are_strings_for_storage_and_logs():
    assert ErrorFamily.THROTTLING == "throttling"
    assert RetryScope.CONTACT == "contact"
    assert RecommendedAction.RECORD_OPT_OUT.value == "record_opt_out"
