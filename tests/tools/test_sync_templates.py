"""``python -m tools.sync_templates`` against a local Graph API serving two pages."""

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from tests.conftest import REPO_ROOT
from tools.sync_templates import FIELDS, main
from whatsapp_core.templates import TemplateCatalogue

TOKEN = "EAAG-secret-token"
FOLLOW_UP_IT = (
    "Ciao {{1}}, vorrei seguire la nostra conversazione precedente. C'è altro con cui hai "
    "bisogno di assistenza? Fammi sapere e sarò felice di aiutarti."
)


class FakeGraph(BaseHTTPRequestHandler):
    """Two pages of templates; page 2's link carries the token, as Meta's links may."""

    pages: dict = {}
    requests: list = []
    error: tuple | None = None

    def do_GET(self):  # noqa: N802 - http.server's name
        url = urlparse(self.path)
        query = parse_qs(url.query)
        type(self).requests.append((url.path, query, self.headers.get("Authorization")))
        if self.error is not None:
            status, body = self.error
        else:
            status, body = 200, self.pages[query.get("after", ["first"])[0]]
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def graph():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeGraph)
    base = f"http://127.0.0.1:{server.server_port}"
    FakeGraph.requests = []
    FakeGraph.error = None
    FakeGraph.pages = {
        "first": {
            "data": [
                {"name": "follow_up", "language": "it", "status": "PAUSED", "category": "UTILITY",
                 "id": "11", "parameter_format": "POSITIONAL",
                 "components": [{"type": "BODY", "text": FOLLOW_UP_IT}]},
                {"name": "follow_up", "language": "en", "status": "APPROVED", "category": "UTILITY",
                 "id": "12", "parameter_format": "POSITIONAL",
                 "components": [{"type": "BODY", "text": "Hi {{1}}, anything else?"}]},
            ],
            "paging": {
                "cursors": {"before": "a", "after": "b"},
                "next": f"{base}/v21.0/123/message_templates?access_token={TOKEN}&after=page2",
            },
        },
        "page2": {
            "data": [
                {"name": "order_ready", "language": "en_US", "status": "APPROVED",
                 "category": "UTILITY", "id": "13", "parameter_format": "NAMED",
                 "components": [{"type": "BODY", "text": "Order {{order}} is ready"}]},
            ],
            "paging": {"cursors": {"before": "b", "after": "c"}},
        },
    }
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield base
    server.shutdown()
    server.server_close()


@pytest.fixture
def catalogue_file(tmp_path):
    path = tmp_path / "catalogue.yml"
    shutil.copy(REPO_ROOT / "templates" / "catalogue.yml", path)
    return path


def sync(graph, catalogue_file, *extra):
    return main(
        ["--waba-id", "123", "--api-base-url", graph, "--catalogue", str(catalogue_file), *extra]
    )


def test_sync_reads_every_page_and_keeps_local_mappings(graph, catalogue_file, monkeypatch, capsys):
    monkeypatch.setenv("WHATSAPP_ACCESS_TOKEN", TOKEN)
    assert sync(graph, catalogue_file) == 0

    (path1, query1, auth1), (path2, query2, auth2) = FakeGraph.requests
    assert path1 == path2 == "/v21.0/123/message_templates"
    assert query1["fields"] == [FIELDS] and query1["limit"] == ["100"]
    assert query2 == {"access_token": [TOKEN], "after": ["page2"]}
    assert auth1 == auth2 == f"Bearer {TOKEN}"

    catalogue = TemplateCatalogue.load(catalogue_file)
    assert [t.name for t in catalogue.templates] == ["follow_up", "order_ready"]
    follow_up = catalogue.get("follow_up")
    assert follow_up.languages["it"].status == "PAUSED"
    assert follow_up.languages["en"].body == "Hi {{1}}, anything else?"
    assert follow_up.parameters["1"].source == "contact.name"
    assert follow_up.parameters["1"].fallback_for("en") == "there"

    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err
    assert out.out.splitlines() == [
        f"2 templates (3 translations) from Meta; wrote {catalogue_file}",
        "new: order_ready",
        "no longer at Meta (removed): appointment_reminder, summer_sale, shipping_update",
        "follow_up (it): APPROVED -> PAUSED",
        "order_ready (en_US): new -> APPROVED",
        "need parameter mappings in the catalogue before they can be sent: order_ready",
    ]


def test_sync_uses_the_requested_api_version(graph, catalogue_file, monkeypatch):
    monkeypatch.setenv("WHATSAPP_ACCESS_TOKEN", TOKEN)
    FakeGraph.pages["first"]["paging"].pop("next")
    assert sync(graph, catalogue_file, "--api-version", "v23.0") == 0
    assert [path for path, _, _ in FakeGraph.requests] == ["/v23.0/123/message_templates"]


def test_graph_error_is_explained_and_the_file_left_alone(graph, catalogue_file, monkeypatch, capsys):
    monkeypatch.setenv("WHATSAPP_ACCESS_TOKEN", TOKEN)
    before = catalogue_file.read_text(encoding="utf-8")
    FakeGraph.error = (
        401,
        {"error": {"message": "Error validating access token: Session has expired",
                   "type": "OAuthException", "code": 190, "fbtrace_id": "Axyz"}},
    )
    assert sync(graph, catalogue_file) == 1
    err = capsys.readouterr().err
    assert "template sync failed: Graph API error 190 (HTTP 401): Error validating access token" in err
    assert "meaning:" in err
    assert TOKEN not in err
    assert catalogue_file.read_text(encoding="utf-8") == before


def test_unreachable_graph_is_a_clear_error(catalogue_file, monkeypatch, capsys):
    monkeypatch.setenv("WHATSAPP_ACCESS_TOKEN", TOKEN)
    assert sync("http://127.0.0.1:9", catalogue_file) == 1
    assert "could not reach the Graph API" in capsys.readouterr().err


def test_network_error_on_a_next_link_never_prints_the_token_it_carries(
    graph, catalogue_file, monkeypatch, capsys
):
    monkeypatch.setenv("WHATSAPP_ACCESS_TOKEN", TOKEN)
    FakeGraph.pages["first"]["paging"]["next"] = (
        f"http://127.0.0.1:9/v21.0/123/message_templates?access_token={TOKEN}&after=page2"
    )
    assert sync(graph, catalogue_file) == 1
    err = capsys.readouterr().err
    assert "could not reach the Graph API" in err
    assert "access_token=***" in err
    assert TOKEN not in err


def test_paging_that_links_back_to_itself_stops(graph, catalogue_file, monkeypatch, capsys):
    monkeypatch.setenv("WHATSAPP_ACCESS_TOKEN", TOKEN)
    loop = f"{graph}/v21.0/123/message_templates?after=loop"
    FakeGraph.pages["first"]["paging"]["next"] = loop
    FakeGraph.pages["loop"] = {"data": [], "paging": {"next": loop}}
    assert sync(graph, catalogue_file) == 1
    assert "paging does not end" in capsys.readouterr().err
    assert len(FakeGraph.requests) == 2


def test_missing_token_is_refused_before_any_request(graph, catalogue_file, monkeypatch, capsys):
    monkeypatch.delenv("WHATSAPP_ACCESS_TOKEN", raising=False)
    assert sync(graph, catalogue_file) == 1
    assert "WHATSAPP_ACCESS_TOKEN" in capsys.readouterr().err
    assert FakeGraph.requests == []


def test_sync_creates_a_catalogue_that_does_not_exist(graph, tmp_path, monkeypatch):
    monkeypatch.setenv("WHATSAPP_ACCESS_TOKEN", TOKEN)
    path = tmp_path / "new.yml"
    assert sync(graph, path) == 0
    assert TemplateCatalogue.load(path).get("order_ready").parameters == {}
