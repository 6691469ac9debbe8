"""The catalogue of WhatsApp Cloud API error codes: what each means and what to do.

Meta reports errors in three places (the synchronous answer to a send, ``statuses[].errors[]``
of a failed message, ``value.errors[]`` / ``messages[].errors[]`` of a webhook) and always
with a numeric ``code``. Meta advises branching on that code (plus ``error_data.details``),
never on the HTTP status or the title, which it is deprecating. :func:`lookup` turns a code
into an :class:`ErrorInfo`: a title, a plain explanation a support agent can read to a
customer, a family, whether a retry can help and for whom, and the recommended action.

Sources: Meta's error-code page (2025/2026 copies), Meta's throughput page, pywa's
``errors.py`` grouping, and the help-centre article on messages marked sent but never
received (see ``shared/reference/whatsapp-cloud-api.md`` section 5).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import Enum
from types import MappingProxyType


class ErrorFamily(str, Enum):
    """The broad area an error belongs to, for routing and dashboards."""

    AUTHORIZATION = "authorization"
    PERMISSION = "permission"
    THROTTLING = "throttling"
    INTEGRITY = "integrity"
    ACCOUNT = "account"
    DELIVERY = "delivery"
    WINDOW = "window"
    TEMPLATE = "template"
    MEDIA = "media"
    REQUEST = "request"
    SERVICE = "service"
    FLOWS = "flows"
    GROUP = "group"
    INBOUND = "inbound"
    UNKNOWN = "unknown"


class RetryScope(str, Enum):
    """What a retry is about: nothing, the same request, or only this one contact.

    ``CONTACT`` (131056, pair rate limit) means the business may keep sending to other
    contacts at full speed; only messages to this contact must wait.
    """

    NONE = "none"
    REQUEST = "request"
    CONTACT = "contact"


class RecommendedAction(str, Enum):
    """What the business (bot, agent or operator) should do about an error."""

    REFRESH_TOKEN = "refresh_token"
    FIX_PERMISSIONS = "fix_permissions"
    BACK_OFF = "back_off"
    SEND_TEMPLATE = "send_template"
    REACH_CONTACT_OTHER_CHANNEL = "reach_contact_other_channel"
    ASK_CONTACT_TO_WRITE_AGAIN = "ask_contact_to_write_again"
    RESEND_INSIDE_WINDOW = "resend_inside_window"
    WAIT_24H_BEFORE_MARKETING = "wait_24h_before_marketing"
    RECORD_OPT_OUT = "record_opt_out"
    FIX_REQUEST = "fix_request"
    FIX_TEMPLATE = "fix_template"
    FIX_MEDIA = "fix_media"
    FIX_FLOW = "fix_flow"
    CHECK_ACCOUNT = "check_account"
    REGISTER_NUMBER = "register_number"
    CONTACT_SUPPORT = "contact_support"
    ASK_TO_RESEND = "ask_to_resend"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """Everything known about one Meta error code.

    Fields:
        code: Meta's ``error.code`` (``None`` only for the record of an error without a code,
            such as a network failure).
        title: Short name, close to Meta's own title.
        explanation: Plain words for a support agent: what happened and why.
        family: The broad area (:class:`ErrorFamily`).
        retryable: Whether sending the same request again, later, can succeed.
        scope: What must wait before a retry (:class:`RetryScope`); ``NONE`` when not
            retryable.
        action: The first thing to do (:class:`RecommendedAction`).
        fallback_actions: What to try next, in order, when ``action`` is not possible.
        retry_after: Seconds to wait at least before a retry can succeed. ``0`` means a short
            exponential backoff is enough; a positive value means the retry belongs to a
            scheduler, not to the sending request.
    """

    code: int | None
    title: str
    explanation: str
    family: ErrorFamily
    retryable: bool
    scope: RetryScope
    action: RecommendedAction
    fallback_actions: tuple[RecommendedAction, ...] = ()
    retry_after: int = 0


_F = ErrorFamily
_A = RecommendedAction


def _no_retry(
    code: int,
    title: str,
    family: ErrorFamily,
    action: RecommendedAction,
    explanation: str,
    *fallbacks: RecommendedAction,
) -> ErrorInfo:
    return ErrorInfo(code, title, explanation, family, False, RetryScope.NONE, action, fallbacks)


def _retry(
    code: int,
    title: str,
    family: ErrorFamily,
    action: RecommendedAction,
    explanation: str,
    *,
    scope: RetryScope = RetryScope.REQUEST,
    retry_after: int = 0,
) -> ErrorInfo:
    return ErrorInfo(code, title, explanation, family, True, scope, action, (), retry_after)


_UNDELIVERABLE_CAUSES = (
    "WhatsApp could not deliver the message to this contact. Common causes: the number is "
    "not on WhatsApp or uses an outdated app; the contact has not accepted WhatsApp's "
    "latest terms; the contact blocked the business phone number (or another number of "
    "the same business); the contact is in a restricted or sanctioned country; the "
    "contact was not online during the 30 days WhatsApp keeps messages for offline users, "
    "so the message expired; or Meta chose not to deliver it to protect the contact's "
    "experience (authentication templates to +91 numbers are also refused). The same "
    "causes explain messages that stay 'sent' or even show 'delivered' without the "
    "contact seeing them: Meta may not have returned the delivered webhook, or the "
    "contact uses several devices and the message reached only one of them. The content "
    "cannot be recovered or resent automatically: reach the contact on another channel, "
    "ask them to write to you again, and resend inside the conversation window they open."
)

# fmt: off
_RECORDS: tuple[ErrorInfo, ...] = (
    # Authorization
    _no_retry(
        0, "Authentication failed", _F.AUTHORIZATION, _A.REFRESH_TOKEN,
        "Meta could not authenticate the access token used to send. The token may be "
        "wrong, revoked, or belong to another app. Replace it with a valid system-user token.",
    ),
    _no_retry(
        190, "Access token has expired", _F.AUTHORIZATION, _A.REFRESH_TOKEN,
        "The access token has expired or was invalidated (for example after a password "
        "change). Nothing can be sent until a new token is configured.",
    ),
    # Permission
    _no_retry(
        3, "Capability missing", _F.PERMISSION, _A.FIX_PERMISSIONS,
        "The app lacks the capability to call this API method. Check the app's WhatsApp "
        "product setup and the token's permissions.",
    ),
    _no_retry(
        10, "Permission denied", _F.PERMISSION, _A.FIX_PERMISSIONS,
        "The token lacks a permission (usually whatsapp_business_messaging or "
        "whatsapp_business_management) or the permission was removed, or the phone number "
        "is not linked to this app's WhatsApp Business Account.",
    ),
    _no_retry(
        200, "API permission denied", _F.PERMISSION, _A.FIX_PERMISSIONS,
        "A permission needed for this call was not granted or was removed (Meta uses codes "
        "200 to 299 for these). Grant the missing permission to the app and its token.",
    ),
    _no_retry(
        131005, "Access denied", _F.PERMISSION, _A.FIX_PERMISSIONS,
        "Meta denied access to this resource: the token lacks a permission or the phone "
        "number belongs to a business account the token cannot use.",
    ),
    _no_retry(
        131063, "Marketing messages disabled", _F.PERMISSION, _A.CHECK_ACCOUNT,
        "Marketing messages are not enabled for this business on the Cloud API. Check the "
        "account's marketing-messages setup before sending marketing templates.",
    ),
    _no_retry(
        131055, "Marketing messages disabled for this API", _F.PERMISSION, _A.CHECK_ACCOUNT,
        "Marketing messages cannot be sent through this API for this account (Meta moves "
        "marketing to the Marketing Messages API). Check the account's marketing setup.",
    ),
    # Throttling
    _retry(
        4, "Too many API calls", _F.THROTTLING, _A.BACK_OFF,
        "The app made too many Graph API calls in a short time. Wait and retry with "
        "increasing pauses.",
    ),
    _retry(
        80007, "WhatsApp Business Account rate limit", _F.THROTTLING, _A.BACK_OFF,
        "The WhatsApp Business Account reached its Graph API call limit. Wait and retry with "
        "increasing pauses.",
    ),
    _retry(
        130429, "Throughput limit reached", _F.THROTTLING, _A.BACK_OFF,
        "The business phone number is sending faster than it may (80 messages per second by "
        "default). Queue messages and retry with increasing pauses.",
    ),
    _retry(
        131056, "Too many messages to this contact", _F.THROTTLING, _A.BACK_OFF,
        "The business sent too many messages to this one contact in a short time (about one "
        "every 6 seconds, with short bursts allowed). Only messages to this contact must "
        "wait; Meta suggests waiting 4, then 16, then 64 seconds and so on.",
        scope=RetryScope.CONTACT,
    ),
    _no_retry(
        131048, "Spam rate limit hit", _F.THROTTLING, _A.CHECK_ACCOUNT,
        "Meta limited sending because many recent messages were blocked or reported by "
        "their recipients. Retrying makes it worse: reduce volume and check the phone "
        "number's quality rating.",
    ),
    # Delivery
    _no_retry(
        131049, "Not delivered to keep engagement healthy", _F.DELIVERY,
        _A.WAIT_24H_BEFORE_MARKETING,
        "Meta did not deliver this marketing message because the contact has received "
        "many marketing messages recently. Do not resend it for at least 24 hours.",
    ),
    _no_retry(
        130472, "Contact is part of a Meta experiment", _F.DELIVERY, _A.NONE,
        "The contact's number is in a Meta experiment that withholds some marketing "
        "messages. Nothing to fix; do not resend the same marketing message.",
    ),
    _no_retry(
        131050, "Contact stopped marketing messages", _F.DELIVERY, _A.RECORD_OPT_OUT,
        "The contact chose to stop receiving marketing messages from this business. Record "
        "the opt-out and send no more marketing templates until they resume.",
    ),
    _no_retry(
        131026, "Message undeliverable", _F.DELIVERY, _A.REACH_CONTACT_OTHER_CHANNEL,
        _UNDELIVERABLE_CAUSES,
        _A.ASK_CONTACT_TO_WRITE_AGAIN, _A.RESEND_INSIDE_WINDOW,
    ),
    _no_retry(
        137000, "Contact identity changed", _F.DELIVERY, _A.REACH_CONTACT_OTHER_CHANNEL,
        "The contact's identity key does not match the one the business expected (the "
        "contact may have reinstalled WhatsApp or changed phone). Confirm who they are on "
        "another channel before sending again.",
    ),
    _no_retry(
        130403, "Business blocked this contact", _F.DELIVERY, _A.CHECK_ACCOUNT,
        "The business has blocked this contact, so messages to them are refused. Unblock "
        "the contact first if they should hear from you.",
    ),
    # Customer-service window
    _no_retry(
        131047, "Outside the 24-hour window", _F.WINDOW, _A.SEND_TEMPLATE,
        "More than 24 hours have passed since the contact last wrote, so only an approved "
        "template may be sent. Send a template, or answer freely once the contact writes "
        "again and opens a new window.",
        _A.ASK_CONTACT_TO_WRITE_AGAIN, _A.RESEND_INSIDE_WINDOW,
    ),
    # Integrity (policy)
    _no_retry(
        368, "Temporarily blocked for policy violations", _F.INTEGRITY, _A.CHECK_ACCOUNT,
        "Meta temporarily blocked this account for violating WhatsApp policies. Check the "
        "account's policy status in WhatsApp Manager; retrying will not help.",
    ),
    _no_retry(
        131031, "Business account locked", _F.INTEGRITY, _A.CHECK_ACCOUNT,
        "The business account is locked, for a policy violation or because data could not "
        "be verified. Stop sending and check the account's health in WhatsApp Manager.",
    ),
    _no_retry(
        130497, "Messaging this country is restricted", _F.INTEGRITY, _A.CHECK_ACCOUNT,
        "The business account may not message contacts in this contact's country (a "
        "restricted or sanctioned country, or a policy limit on the account).",
        _A.REACH_CONTACT_OTHER_CHANNEL,
    ),
    _no_retry(
        131064, "Messaging limited for template misuse", _F.INTEGRITY, _A.CHECK_ACCOUNT,
        "Meta limited messaging because templates were used in a category they do not "
        "belong to. Review template categories in WhatsApp Manager.",
    ),
    # Account setup
    _no_retry(
        131042, "Payment issue", _F.ACCOUNT, _A.CHECK_ACCOUNT,
        "The business account has a payment problem (no valid payment method, credit line "
        "over limit, or account not eligible). Fix billing before sending templates.",
    ),
    _no_retry(
        131045, "Incorrect certificate", _F.ACCOUNT, _A.REGISTER_NUMBER,
        "The phone number was registered with an incorrect certificate. Register the number "
        "again.",
    ),
    _no_retry(
        133000, "Incomplete deregistration", _F.ACCOUNT, _A.REGISTER_NUMBER,
        "A previous deregistration of this phone number did not finish. Deregister it again "
        "before registering.",
    ),
    _no_retry(
        133010, "Phone number not registered", _F.ACCOUNT, _A.REGISTER_NUMBER,
        "The business phone number is not registered on the Cloud API. Register it before "
        "sending.",
    ),
    _no_retry(
        131037, "Display name not approved", _F.ACCOUNT, _A.CHECK_ACCOUNT,
        "The phone number's display name has not been approved yet. Wait for approval or "
        "fix the name in WhatsApp Manager.",
    ),
    # Request
    _no_retry(
        131008, "Required parameter missing", _F.REQUEST, _A.FIX_REQUEST,
        "The message lacks a required field. The details name the field; fix the message.",
    ),
    _no_retry(
        131009, "Parameter value not valid", _F.REQUEST, _A.FIX_REQUEST,
        "A field of the message has an invalid value. This also arrives when reacting to a "
        "message older than 30 days, a deleted message or a reaction.",
    ),
    _no_retry(
        100, "Invalid parameter", _F.REQUEST, _A.FIX_REQUEST,
        "The request has an invalid or misspelled parameter, or a value over a limit "
        "(such as media that is too big). The details name the parameter.",
    ),
    _no_retry(
        33, "Phone number id not usable", _F.REQUEST, _A.FIX_REQUEST,
        "The business phone number id in the request is wrong or the number was deleted. "
        "Check the configured phone number id.",
    ),
    _no_retry(
        135000, "Generic user error", _F.REQUEST, _A.FIX_REQUEST,
        "Meta refused the request for an unspecified reason in the request itself. Check "
        "the message against the API's rules.",
    ),
    _no_retry(
        131021, "Recipient is the sender", _F.REQUEST, _A.FIX_REQUEST,
        "The message was addressed to the business's own phone number.",
    ),
    _no_retry(
        131030, "Recipient not in allowed list", _F.REQUEST, _A.FIX_REQUEST,
        "A test phone number may only message numbers on its allowed list. Add the "
        "recipient in the app dashboard, or use a production number.",
    ),
    _no_retry(
        131062, "Recipient id not supported here", _F.REQUEST, _A.FIX_REQUEST,
        "This kind of message cannot be sent to a business-scoped user id; send it to the "
        "contact's phone number instead.",
    ),
    # Service
    _retry(
        131000, "Something went wrong", _F.SERVICE, _A.CONTACT_SUPPORT,
        "Meta failed for an unknown reason. A retry often works; if it keeps failing, open a "
        "support ticket with the fbtrace id.",
    ),
    _retry(
        131016, "Service unavailable", _F.SERVICE, _A.BACK_OFF,
        "The WhatsApp service is temporarily unavailable. Retry with increasing pauses and "
        "check Meta's status page.",
    ),
    _retry(
        1, "Unknown API error", _F.SERVICE, _A.BACK_OFF,
        "Meta reported an unknown error, possibly a temporary outage. Retry with increasing "
        "pauses and check Meta's status page.",
    ),
    _retry(
        2, "API service error", _F.SERVICE, _A.BACK_OFF,
        "A Meta service is temporarily unavailable. Retry with increasing pauses and check "
        "Meta's status page.",
    ),
    _retry(
        133004, "Server temporarily unavailable", _F.SERVICE, _A.BACK_OFF,
        "Meta's server is temporarily unavailable. Retry with increasing pauses and check "
        "Meta's status page.",
    ),
    _retry(
        131057, "Account in maintenance mode", _F.SERVICE, _A.BACK_OFF,
        "The business account is in maintenance, for example during an automatic throughput "
        "upgrade (about a minute). Retry after a short wait.",
    ),
    # Templates
    _no_retry(
        132000, "Template parameter count mismatch", _F.TEMPLATE, _A.FIX_TEMPLATE,
        "The number of parameters sent does not match the number of variables in the "
        "template.",
    ),
    _no_retry(
        132001, "Template does not exist", _F.TEMPLATE, _A.FIX_TEMPLATE,
        "No approved template has this name in this language. Check the name, the language "
        "code and the template's approval status.",
    ),
    _no_retry(
        132005, "Template text too long", _F.TEMPLATE, _A.FIX_TEMPLATE,
        "With its parameters filled in, the template's text is longer than allowed. Shorten "
        "the parameter values.",
    ),
    _no_retry(
        132007, "Template content policy violated", _F.TEMPLATE, _A.FIX_TEMPLATE,
        "The template's content or parameter values break WhatsApp's format or character "
        "policy (for example new lines, tabs or too many spaces in a parameter).",
    ),
    _no_retry(
        132012, "Template parameter format mismatch", _F.TEMPLATE, _A.FIX_TEMPLATE,
        "A parameter has the wrong type or format for the template (for example text where "
        "the header expects an image).",
    ),
    _no_retry(
        132015, "Template paused", _F.TEMPLATE, _A.FIX_TEMPLATE,
        "The template was paused for low quality. Edit it or wait until Meta unpauses it; "
        "meanwhile use another template.",
    ),
    _no_retry(
        132016, "Template disabled", _F.TEMPLATE, _A.FIX_TEMPLATE,
        "The template was paused too many times and is now disabled for good. Create a new "
        "template.",
    ),
    # Media
    _no_retry(
        131052, "Media download error", _F.MEDIA, _A.ASK_TO_RESEND,
        "The media the contact sent could not be downloaded, for example because it is "
        "bigger than 100 MB. Ask the contact to send it again, smaller or another way.",
    ),
    _no_retry(
        131053, "Media upload error", _F.MEDIA, _A.FIX_MEDIA,
        "The media of the message could not be used: unsupported type, too big, or the link "
        "could not be fetched. Fix the file or its URL.",
    ),
    # Flows
    _no_retry(
        132068, "Flow blocked", _F.FLOWS, _A.FIX_FLOW,
        "The WhatsApp Flow is blocked and cannot be sent. Fix the Flow in WhatsApp Manager.",
    ),
    _retry(
        132069, "Flow throttled", _F.FLOWS, _A.BACK_OFF,
        "This Flow is throttled: 10 messages with it were already sent in the last hour. "
        "Retry after the hour.",
        retry_after=3600,
    ),
    # Groups
    _no_retry(
        131020, "Invalid group", _F.GROUP, _A.FIX_REQUEST,
        "The group cannot receive messages (for example it has a single member).",
    ),
    _no_retry(
        131041, "Group unknown", _F.GROUP, _A.FIX_REQUEST,
        "No group with this id exists for the business.",
    ),
    # Inbound (arrive in webhooks about messages the contact sent)
    _no_retry(
        131051, "Unsupported message type", _F.INBOUND, _A.ASK_TO_RESEND,
        "The contact sent a kind of message the Cloud API cannot show (for example an "
        "edited message or a poll). Ask them to resend it as text or an ordinary photo. When "
        "it answers a send, the business used a message type the API does not support.",
    ),
    _no_retry(
        130501, "Unsupported message type in group", _F.INBOUND, _A.ASK_TO_RESEND,
        "A group participant sent a kind of message groups do not support through the API. "
        "Ask them to resend it as text or an ordinary photo.",
    ),
    _no_retry(
        131060, "Message currently unavailable", _F.INBOUND, _A.ASK_TO_RESEND,
        "WhatsApp could not show this message, typically the contact's first message to a "
        "number shared with the WhatsApp Business app. Ask the contact to resend it.",
    ),
)
# fmt: on

CATALOGUE: Mapping[int, ErrorInfo] = MappingProxyType(
    {record.code: record for record in _RECORDS if record.code is not None}
)
"""Every known record keyed by code (read-only). The 200–299 range is keyed as 200."""

_PERMISSION_RANGE = range(200, 300)

_UNKNOWN = ErrorInfo(
    code=None,
    title="Unknown error",
    explanation=(
        "This error has no code, or a code this catalogue does not know yet. Read the "
        "details Meta sent, check Meta's error-code page, and open a support ticket with "
        "the fbtrace id if it persists."
    ),
    family=ErrorFamily.UNKNOWN,
    retryable=False,
    scope=RetryScope.NONE,
    action=RecommendedAction.CONTACT_SUPPORT,
)


def lookup(code: int | None) -> ErrorInfo:
    """Return the catalogue record for a Meta error ``code``.

    Codes 200–299 all return the permission record, carrying the code asked for. An
    unknown code, or ``None``, returns a generic record of family ``UNKNOWN`` (not
    retryable, action ``contact_support``) carrying the code asked for. Never raises.
    """
    if code is None:
        return _UNKNOWN
    record = CATALOGUE.get(code)
    if record is not None:
        return record
    if code in _PERMISSION_RANGE:
        return replace(CATALOGUE[200], code=code)
    return replace(_UNKNOWN, code=code)
