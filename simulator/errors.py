"""Meta's error vocabulary: synchronous Graph API errors and asynchronous status errors."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

ERROR_CODES_HREF = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"


class ErrorCode(IntEnum):
    """Error codes the simulator emits, with Meta's numbers."""

    SERVICE_UNAVAILABLE = 2
    INVALID_PARAMETER = 100
    ACCESS_TOKEN = 190
    WABA_RATE_LIMIT = 80007
    THROUGHPUT_RATE_LIMIT = 130429
    SOMETHING_WENT_WRONG = 131000
    REQUIRED_PARAMETER_MISSING = 131008
    PARAMETER_VALUE_INVALID = 131009
    RECIPIENT_IS_SENDER = 131021
    UNDELIVERABLE = 131026
    RE_ENGAGEMENT = 131047
    MARKETING_LIMIT = 131049
    UNSUPPORTED_MESSAGE_TYPE = 131051
    MEDIA_DOWNLOAD_ERROR = 131052
    MEDIA_UPLOAD_ERROR = 131053
    PAIR_RATE_LIMIT = 131056
    MESSAGE_UNAVAILABLE = 131060
    TEMPLATE_PARAM_COUNT = 132000
    TEMPLATE_NOT_FOUND = 132001
    TEMPLATE_TEXT_TOO_LONG = 132005
    TEMPLATE_PARAM_FORMAT = 132012
    TEMPLATE_PAUSED = 132015
    TEMPLATE_DISABLED = 132016
    TEMPLATE_PARAM_CONTENT = 132018
    GROUP_UNSUPPORTED_TYPE = 130501


TITLES: dict[ErrorCode, str] = {
    ErrorCode.SERVICE_UNAVAILABLE: "Service temporarily unavailable",
    ErrorCode.INVALID_PARAMETER: "Invalid parameter",
    ErrorCode.ACCESS_TOKEN: "Invalid OAuth access token - Cannot parse access token",
    ErrorCode.WABA_RATE_LIMIT: "Rate limit issues",
    ErrorCode.THROUGHPUT_RATE_LIMIT: "Rate limit hit",
    ErrorCode.SOMETHING_WENT_WRONG: "Something went wrong",
    ErrorCode.REQUIRED_PARAMETER_MISSING: "Required parameter is missing",
    ErrorCode.PARAMETER_VALUE_INVALID: "Parameter value is not valid",
    ErrorCode.RECIPIENT_IS_SENDER: "Recipient cannot be sender",
    ErrorCode.UNDELIVERABLE: "Message undeliverable",
    ErrorCode.RE_ENGAGEMENT: "Re-engagement message",
    ErrorCode.MARKETING_LIMIT: (
        "This message was not delivered to maintain healthy ecosystem engagement."
    ),
    ErrorCode.UNSUPPORTED_MESSAGE_TYPE: "Message type unknown",
    ErrorCode.MEDIA_DOWNLOAD_ERROR: "Media download error",
    ErrorCode.MEDIA_UPLOAD_ERROR: "Media upload error",
    ErrorCode.PAIR_RATE_LIMIT: "(Business Account, Consumer Account) pair rate limit hit",
    ErrorCode.MESSAGE_UNAVAILABLE: "This message is currently unavailable.",
    ErrorCode.TEMPLATE_PARAM_COUNT: (
        "Number of parameters does not match the expected number of params"
    ),
    ErrorCode.TEMPLATE_NOT_FOUND: "Template name does not exist in the translation",
    ErrorCode.TEMPLATE_TEXT_TOO_LONG: "Translated text too long",
    ErrorCode.TEMPLATE_PARAM_FORMAT: (
        "Parameter format does not match format in the created template"
    ),
    ErrorCode.TEMPLATE_PAUSED: "Template is Paused",
    ErrorCode.TEMPLATE_DISABLED: "Template is Disabled",
    ErrorCode.TEMPLATE_PARAM_CONTENT: "There was an issue with the parameters in your template",
    ErrorCode.GROUP_UNSUPPORTED_TYPE: "Unsupported message type",
}


def fbtrace_id() -> str:
    """A random trace id shaped like Meta's (``A`` + 22 alphanumerics)."""
    alphabet = string.ascii_letters + string.digits
    return "A" + "".join(secrets.choice(alphabet) for _ in range(22))


class GraphError(Exception):
    """A synchronous Graph API error, rendered in Meta's JSON shape.

    ``details`` must say which field is wrong; it lands in ``error.error_data.details``.
    Auth errors (190) carry no ``error_data``, as Meta's don't.
    """

    def __init__(
        self,
        code: ErrorCode,
        details: str,
        *,
        http_status: int = 400,
        message: str | None = None,
        error_type: str = "OAuthException",
        subcode: int | None = None,
    ) -> None:
        super().__init__(f"({code.value}) {details}")
        self.code = code
        self.details = details
        self.http_status = http_status
        self.message = message or f"(#{code.value}) {TITLES[code]}"
        self.error_type = error_type
        self.subcode = subcode

    def body(self) -> dict[str, Any]:
        """The full response body ``{"error": {...}}``."""
        error: dict[str, Any] = {
            "message": self.message,
            "type": self.error_type,
            "code": int(self.code),
        }
        if self.code is not ErrorCode.ACCESS_TOKEN:
            error["error_data"] = {"messaging_product": "whatsapp", "details": self.details}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        error["fbtrace_id"] = fbtrace_id()
        return {"error": error}


def missing(path: str) -> GraphError:
    """131008 for a required field that is absent."""
    return GraphError(ErrorCode.REQUIRED_PARAMETER_MISSING, f"The parameter {path} is required.")


def invalid(path: str, reason: str) -> GraphError:
    """131009 for a field whose value breaks a rule; ``reason`` states the rule."""
    return GraphError(ErrorCode.PARAMETER_VALUE_INVALID, f"{path}: {reason}")


def wrong_type(path: str, expected: str) -> GraphError:
    """100 for a field of the wrong JSON type."""
    return GraphError(ErrorCode.INVALID_PARAMETER, f"Param {path} must be {expected}.")


def unknown_object(object_id: str, method: str = "post") -> GraphError:
    """100/33, Graph's answer for an id that does not exist (phone number, WABA, media)."""
    return GraphError(
        ErrorCode.INVALID_PARAMETER,
        f"Object with ID '{object_id}' does not exist, cannot be loaded due to missing "
        "permissions, or does not support this operation.",
        message=(
            f"Unsupported {method} request. Object with ID '{object_id}' does not exist, cannot "
            "be loaded due to missing permissions, or does not support this operation."
        ),
        error_type="GraphMethodException",
        subcode=33,
    )


@dataclass(frozen=True)
class StatusError:
    """An asynchronous error carried by a ``failed`` status webhook (``statuses[].errors[]``)."""

    code: ErrorCode
    details: str

    def to_json(self) -> dict[str, Any]:
        """The ``errors[]`` item in Meta's webhook shape."""
        title = TITLES[self.code]
        return {
            "code": int(self.code),
            "title": title,
            "message": title,
            "error_data": {"details": self.details},
            "href": ERROR_CODES_HREF,
        }


RE_ENGAGEMENT_ERROR = StatusError(
    ErrorCode.RE_ENGAGEMENT,
    "Message failed to send because more than 24 hours have passed since the customer last "
    "replied to this number.",
)
UNDELIVERABLE_ERROR = StatusError(ErrorCode.UNDELIVERABLE, "Message Undeliverable.")
MARKETING_LIMIT_ERROR = StatusError(
    ErrorCode.MARKETING_LIMIT,
    "In order to maintain a healthy ecosystem engagement, the message failed to be delivered.",
)
REACTION_TARGET_ERROR = StatusError(
    ErrorCode.PARAMETER_VALUE_INVALID,
    "Reaction target message not found in this chat, or older than 30 days.",
)


class ControlError(ValueError):
    """A malformed control API (``/_sim/...``) request; answered 400 ``{"error": message}``."""
