"""The built-in template list, in the shape of Graph's ``message_templates`` listing.

Used when no ``--templates`` file is given. It covers what tests need: an approved UTILITY
template in two languages (``follow_up``), a PAUSED and a DISABLED one, an approved MARKETING
one with an image header, footer, a URL button with a ``{{1}}`` suffix and a quick reply
(``summer_sale``), a NAMED-parameter template with a text header (``appointment_reminder``) and
an AUTHENTICATION one with a one-time-password button (``login_code``).
"""

from __future__ import annotations

from typing import Any

DEFAULT_TEMPLATES: list[dict[str, Any]] = [
    {
        "name": "follow_up",
        "language": "it",
        "status": "APPROVED",
        "category": "UTILITY",
        "parameter_format": "POSITIONAL",
        "components": [
            {
                "type": "BODY",
                "text": (
                    "Ciao {{1}}, vorrei seguire la nostra conversazione precedente. C'è altro "
                    "con cui hai bisogno di assistenza? Fammi sapere e sarò felice di aiutarti."
                ),
                "example": {"body_text": [["Sheena"]]},
            }
        ],
    },
    {
        "name": "follow_up",
        "language": "en",
        "status": "APPROVED",
        "category": "UTILITY",
        "parameter_format": "POSITIONAL",
        "components": [
            {
                "type": "BODY",
                "text": (
                    "Hi {{1}}, I'd like to follow up on our previous conversation. Is there "
                    "anything else you need help with? Let me know and I'll be happy to help."
                ),
                "example": {"body_text": [["Sheena"]]},
            }
        ],
    },
    {
        "name": "shipping_update",
        "language": "en",
        "status": "PAUSED",
        "category": "UTILITY",
        "parameter_format": "POSITIONAL",
        "components": [
            {
                "type": "BODY",
                "text": "Your order {{1}} has shipped and should arrive on {{2}}.",
                "example": {"body_text": [["#1234", "Monday"]]},
            }
        ],
    },
    {
        "name": "spring_promo",
        "language": "en",
        "status": "DISABLED",
        "category": "MARKETING",
        "parameter_format": "POSITIONAL",
        "components": [
            {
                "type": "BODY",
                "text": "Spring deals are here, {{1}}! Everything is 20% off this week.",
                "example": {"body_text": [["Sheena"]]},
            }
        ],
    },
    {
        "name": "summer_sale",
        "language": "en",
        "status": "APPROVED",
        "category": "MARKETING",
        "parameter_format": "POSITIONAL",
        "components": [
            {
                "type": "HEADER",
                "format": "IMAGE",
                "example": {"header_handle": ["https://shop.example.com/img/summer.jpg"]},
            },
            {
                "type": "BODY",
                "text": "Hi {{1}}, our summer sale is on: {{2}} off everything until Sunday.",
                "example": {"body_text": [["Sheena", "25%"]]},
            },
            {"type": "FOOTER", "text": "Reply STOP to unsubscribe"},
            {
                "type": "BUTTONS",
                "buttons": [
                    {
                        "type": "URL",
                        "text": "Shop now",
                        "url": "https://shop.example.com/sale/{{1}}",
                        "example": ["https://shop.example.com/sale/summer25"],
                    },
                    {"type": "QUICK_REPLY", "text": "Stop promotions"},
                ],
            },
        ],
    },
    {
        "name": "appointment_reminder",
        "language": "en",
        "status": "APPROVED",
        "category": "UTILITY",
        "parameter_format": "NAMED",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Appointment reminder"},
            {
                "type": "BODY",
                "text": "Hi {{first_name}}, your appointment is on {{date}} at {{time}}.",
                "example": {
                    "body_text_named_params": [
                        {"param_name": "first_name", "example": "Sheena"},
                        {"param_name": "date", "example": "May 3"},
                        {"param_name": "time", "example": "10:30"},
                    ]
                },
            },
        ],
    },
    {
        "name": "login_code",
        "language": "en",
        "status": "APPROVED",
        "category": "AUTHENTICATION",
        "parameter_format": "POSITIONAL",
        "components": [
            {
                "type": "BODY",
                "text": "{{1}} is your verification code. For your security, do not share it.",
                "example": {"body_text": [["123456"]]},
            },
            {"type": "FOOTER", "text": "This code expires in 10 minutes."},
            {
                "type": "BUTTONS",
                "buttons": [{"type": "OTP", "otp_type": "COPY_CODE", "text": "Copy code"}],
            },
        ],
    },
]
