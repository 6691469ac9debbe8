"""The agent inbox page in real headless Chromium, against real `rasa run`, actions and the
Cloud API simulator. A contact with a hostile profile name writes hostile texts and an
unsupported message with hostile raw JSON; an agent signs in, opens the conversation,
reads the raw JSON, replies, walks the template steps and hands back. Nothing the contact
wrote may run, and all of it must read exactly as typed.

Screenshots of every step: tests/artifacts/agent_page/ (``./bin/setup-browser`` first).
"""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.e2e.test_agent_handover import AGENT_TOKEN, bot_with_inbox, texts

try:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:  # the `browser` fixture fails with the install command
    By = Select = WebDriverWait = None

pytestmark = pytest.mark.e2e

CONTACT = "393338000001"
LATE_CONTACT = "393338000002"
NAME = "<img src=x onerror=alert(1)>"
SCRIPT_TEXT = "</script><script>window.__pwned=1</script>"
LINK_TEXT = 'Open <a href="javascript:alert(2)">javascript:alert(document.cookie)</a> now'
REPLY = "Hello, Ada here. <b>Not bold</b> & not a tag"
COUNTDOWN = re.compile(r"^\d+h \d\dm \d\ds left$")


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    with bot_with_inbox(tmp_path_factory.mktemp("browser")) as started:
        yield started


def hostile_unsupported(now: int) -> dict:
    return {
        "from": CONTACT,
        "id": "wamid.HOSTILE-UNSUPPORTED",
        "timestamp": str(now),
        "type": "unsupported",
        "errors": [
            {
                "code": 131051,
                "title": "Message type unknown",
                "message": "<img src=x onerror=alert(3)>",
                "error_data": {"details": SCRIPT_TEXT},
            }
        ],
        "unsupported": {"type": "<svg onload=alert(4)>"},
    }


def late_envelope(contact: str, text: str, at: int) -> dict:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": "Late Larry"}, "wa_id": contact}],
        "messages": [{"from": contact, "id": f"wamid.late.{at}", "timestamp": str(at),
                      "type": "text", "text": {"body": text}}],
    }
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}]}


def wait_until(predicate, timeout: float = 20, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def text_of(driver, css: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, css).get_property("textContent")


def visible(driver, css: str, timeout: float = 20):
    return WebDriverWait(driver, timeout).until(
        lambda d: next((e for e in d.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()), None)
    )


def test_the_agent_inbox_in_a_real_browser(running, browser, screenshots):
    sim, inbox = running
    driver = browser

    def shot(name: str) -> None:
        driver.save_screenshot(str(screenshots / f"{name}.png"))

    # --- the contact writes; two misunderstood messages (or the request) hand over
    sim.client.inbound_text(CONTACT, SCRIPT_TEXT, name=NAME)
    sim.client.wait_for_messages(CONTACT, 1)
    sim.client.inbound_text(CONTACT, LINK_TEXT, name=NAME)
    sim.client.wait_for_messages(CONTACT, 2)
    if not [c for c in inbox.get("conversations")["conversations"]
            if c["conversation_id"] == CONTACT]:
        sim.client.inbound_text(CONTACT, "I want to talk to a human", name=NAME)
    inbox.queued(CONTACT)
    raw = hostile_unsupported(int(sim.client.clock()))
    sim.client.inbound_raw(CONTACT, raw, name=NAME)
    wait_until(
        lambda: any(e["message_id"] == raw["id"] and e["state"] == "done"
                    for e in inbox.get(f"conversations/{CONTACT}")["timeline"]),
        what="the unsupported message in the timeline",
    )
    bot_messages = len(sim.client.messages(CONTACT))

    # --- a conversation whose window closed a day ago
    late = int(time.time()) - 25 * 3600
    sim.client.post_webhook(late_envelope(LATE_CONTACT, "I want to talk to a human", late))
    inbox.queued(LATE_CONTACT)

    # --- sign in
    driver.get(inbox.page)
    visible(driver, "#login-form")
    shot("01-sign-in")
    driver.find_element(By.ID, "token").send_keys(AGENT_TOKEN)
    driver.find_element(By.ID, "agent-name").send_keys("Ada")
    driver.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()

    # --- the queue: the hostile name reads as typed
    item = visible(driver, f'.queue-open[data-conversation="{CONTACT}"]')
    assert item.find_element(By.CSS_SELECTOR, ".name").get_property("textContent") == NAME
    shot("02-queue")

    # --- the conversation, with a live countdown of the window
    item.click()
    WebDriverWait(driver, 20).until(lambda d: text_of(d, "#conv-name") == NAME)
    first = WebDriverWait(driver, 20).until(
        lambda d: COUNTDOWN.match(text_of(d, "#countdown")) and text_of(d, "#countdown")
    )
    WebDriverWait(driver, 5).until(lambda d: text_of(d, "#countdown") != first)
    timeline = [e.get_property("textContent")
                for e in driver.find_elements(By.CSS_SELECTOR, "#timeline-list .entry > .text")]
    assert SCRIPT_TEXT in timeline and LINK_TEXT in timeline
    turns = [e.get_property("textContent")
             for e in driver.find_elements(By.CSS_SELECTOR, "#summary-turns .text")]
    assert SCRIPT_TEXT in turns
    assert not driver.find_elements(By.CSS_SELECTOR, "#timeline-list a, #summary-turns a")
    shot("03-conversation")

    # --- the raw JSON of the unsupported message, behind its toggle
    pre = driver.find_elements(By.CSS_SELECTOR, ".unsupported .raw-json")[-1]
    assert not pre.is_displayed()
    driver.find_elements(By.CSS_SELECTOR, ".unsupported .raw-toggle")[-1].click()
    WebDriverWait(driver, 5).until(lambda d: pre.is_displayed())
    assert json.loads(pre.get_property("textContent")) == raw
    shot("04-raw-json")

    # --- take it and reply inside the window
    driver.find_element(By.ID, "take").click()
    WebDriverWait(driver, 20).until(lambda d: text_of(d, "#conv-agent") == "Ada")
    driver.find_element(By.ID, "reply-text").send_keys(REPLY)
    driver.find_element(By.ID, "reply-send").click()
    WebDriverWait(driver, 20).until(lambda d: text_of(d, "#reply-status") == "Reply sent.")
    shot("05-reply-sent")
    sim.client.wait_for_messages(CONTACT, bot_messages + 1)
    assert texts(sim, CONTACT)[bot_messages] == REPLY

    # --- the template, step by step: choose, fill ($contact.name), review, send
    select = Select(driver.find_element(By.ID, "template-select"))
    follow_up = next(o for o in select.options if o.text.startswith("follow_up (en,"))
    select.select_by_visible_text(follow_up.text)
    parameter = visible(driver, '#template-params input[data-key="1"]')
    assert parameter.get_property("value") == NAME
    parameter.clear()
    parameter.send_keys("Giulia")
    shot("06-template-parameters")
    driver.find_element(By.ID, "template-review").click()
    visible(driver, "#step-review")
    WebDriverWait(driver, 20).until(
        lambda d: text_of(d, "#template-text").startswith("Hi Giulia, I'd like to follow up")
    )
    assert text_of(driver, "#template-price").startswith("Price: 0.00 USD")
    shot("07-template-review")
    driver.find_element(By.ID, "template-send").click()
    WebDriverWait(driver, 20).until(
        lambda d: text_of(d, "#template-status").startswith("Template sent: follow_up (en)")
    )
    shot("08-template-sent")
    sim.client.wait_for_messages(CONTACT, bot_messages + 2)
    template = sim.client.messages(CONTACT)[bot_messages + 1]["payload"]["template"]
    assert template["name"] == "follow_up"
    assert template["components"][0]["parameters"][0]["text"] == "Giulia"

    # --- hand back: the bot says it is back
    driver.find_element(By.ID, "handback").click()
    WebDriverWait(driver, 20).until(lambda d: text_of(d, "#conv-status").startswith("Handed back"))
    shot("09-handed-back")
    sim.client.wait_for_messages(CONTACT, bot_messages + 3)
    assert texts(sim, CONTACT)[-1] == "I'm back — anything else I can help with?"

    # --- a closed window: the reply box is off, with the reason
    late_item = visible(driver, f'.queue-open[data-conversation="{LATE_CONTACT}"]')
    late_item.click()
    WebDriverWait(driver, 20).until(lambda d: text_of(d, "#conv-name") == "Late Larry")
    WebDriverWait(driver, 20).until(lambda d: "24 hours" in text_of(d, "#reply-disabled"))
    assert not driver.find_element(By.ID, "reply-text").is_enabled()
    assert text_of(driver, "#window-label") == "Customer service window closed."
    shot("10-window-closed")

    # --- nothing the contact wrote ran
    assert driver.execute_script("return typeof window.__pwned") == "undefined"
    assert driver.execute_script("return window.__alerts") == []
    assert driver.execute_script(
        "return document.querySelectorAll('img, svg, iframe, script:not([src])').length"
    ) == 0
