"""The WhatsApp channel on a Sanic server in its own process (no Rasa agent), for tests that
may wedge or kill the server: ``python -m tests.reliability.channel_server --port P --db F``."""

from __future__ import annotations

import argparse
from pathlib import Path

from sanic import Sanic

from connectors.whatsapp_connector import WhatsAppInput
from tests.reliability.conftest import credentials


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()
    app = Sanic("whatsapp_channel_only")
    channel = WhatsAppInput.from_credentials(credentials(Path(args.dir)))

    async def on_new_message(_message) -> None:
        return None

    app.blueprint(channel.blueprint(on_new_message), url_prefix="/webhooks/whatsapp")
    app.run(host="127.0.0.1", port=args.port, workers=1, access_log=False, motd=False)


if __name__ == "__main__":
    main()
