"""WhatsApp Cloud API knowledge, free of Rasa.

Everything here is importable by the Rasa input/output channel (``rasa run``) and by
the custom actions (``rasa run actions``, which has rasa-sdk but not rasa): typed
webhook models, normalization of inbound messages, signature checks, unsupported
kinds, the error catalogue, outbound formatting, the Graph API client and the SQL
store. No module in this package imports ``rasa`` or ``rasa_sdk``.
"""
