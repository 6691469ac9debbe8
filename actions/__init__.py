"""Custom actions of the WhatsApp support assistant (rasa-sdk adapter).

Run them with ``rasa run actions --actions actions``; the action server imports
every module of this package and registers the ``Action`` classes it finds.
These modules use ``rasa_sdk`` only, never ``rasa``.
"""
