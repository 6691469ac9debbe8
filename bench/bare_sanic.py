"""The baseline of the status-webhook benchmark: a bare Sanic endpoint that verifies
``X-Hub-Signature-256`` (HMAC-SHA256 of the raw body, constant-time compare) and
answers 200. Same Sanic version as ``rasa run``, one worker, access log off."""

from __future__ import annotations

import argparse
import hashlib
import hmac

from sanic import Sanic, response


def build(secret: str) -> Sanic:
    app = Sanic("bare_hmac_endpoint")
    key = secret.encode()

    @app.get("/health")
    async def health(_request):
        return response.text("ok")

    @app.post("/webhooks/whatsapp/webhook")
    async def webhook(request):
        header = request.headers.get("x-hub-signature-256") or ""
        expected = "sha256=" + hmac.new(key, request.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(header.encode(), expected.encode()):
            return response.text("invalid signature", status=403)
        return response.text("ok")

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    args = parser.parse_args()
    build(args.secret).run(
        host="127.0.0.1", port=args.port, workers=1, access_log=False, motd=False
    )


if __name__ == "__main__":
    main()
