// The agent inbox: queue, conversation, window countdown, reply, template steps, hand back.
// Vanilla JS, no build step. Everything a contact wrote (texts, names, captions, file
// names, Flow answers, raw JSON) is put on the page with textContent, never parsed as HTML.
// The agent token lives in sessionStorage and is sent only in the Authorization header.
"use strict";

(function () {
  const TOKEN_KEY = "whatsappAgentToken";
  const NAME_KEY = "whatsappAgentName";
  const QUEUE_REFRESH_MS = 5000;
  const CONVERSATION_REFRESH_MS = 10000;

  const state = {
    conversationId: null,
    clockOffset: 0, // server time minus browser time, seconds
    windowExpiresAt: null,
    windowOpen: false,
    handoverOpen: false,
    templates: [],
    chosen: null,
    shownRaw: new Set(),
  };

  const $ = (id) => document.getElementById(id);

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  function agentName() {
    return sessionStorage.getItem(NAME_KEY) || "";
  }

  class ApiError extends Error {
    constructor(status, body) {
      super((body && (body.detail || body.error)) || "HTTP " + status);
      this.status = status;
      this.body = body || {};
    }
  }

  async function api(method, path, body) {
    const headers = { Authorization: "Bearer " + token() };
    const init = { method, headers, credentials: "omit", cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch("api/" + path, init);
    let data = null;
    try {
      data = await response.json();
    } catch (error) {
      data = null;
    }
    if (response.status === 401) {
      signOut("The agent token was not accepted.");
      throw new ApiError(401, data);
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  function conversationPath(suffix) {
    return "conversations/" + encodeURIComponent(state.conversationId) + (suffix || "");
  }

  function syncClock(serverNow) {
    if (typeof serverNow === "number") state.clockOffset = serverNow - Date.now() / 1000;
  }

  function now() {
    return Date.now() / 1000 + state.clockOffset;
  }

  function when(seconds) {
    if (!seconds) return "";
    return new Date(seconds * 1000).toLocaleString();
  }

  function duration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const r = s % 60;
    return h + "h " + String(m).padStart(2, "0") + "m " + String(r).padStart(2, "0") + "s";
  }

  // ------------------------------------------------------------------ sign in
  function showLogin(message) {
    $("login").hidden = false;
    $("inbox").hidden = true;
    $("sign-out").hidden = true;
    $("whoami").textContent = "";
    $("login-error").textContent = message || "";
    $("agent-name").value = agentName();
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.conversationId = null;
    showLogin(message);
  }

  function showInbox() {
    $("login").hidden = true;
    $("inbox").hidden = false;
    $("sign-out").hidden = false;
    $("whoami").textContent = "Signed in as " + agentName();
    refreshQueue();
  }

  // -------------------------------------------------------------------- queue
  async function refreshQueue() {
    if (!token()) return;
    let data;
    try {
      data = await api("GET", "conversations");
    } catch (error) {
      return;
    }
    syncClock(data.now);
    const list = $("queue-list");
    list.replaceChildren();
    $("queue-empty").hidden = data.conversations.length > 0;
    for (const item of data.conversations) {
      const li = el("li", "queue-item");
      if (item.conversation_id === state.conversationId) li.classList.add("selected");
      const button = el("button", "queue-open");
      button.type = "button";
      button.dataset.conversation = item.conversation_id;
      button.append(
        el("span", "name", item.contact_name || "Unknown contact"),
        el("span", "number", item.masked_number),
        el("span", "reason", item.reason.replace(/_/g, " ")),
        el("span", "state " + item.state, item.state.replace(/_/g, " ")),
        el(
          "span",
          "window-left",
          item.window.open ? duration(item.window.seconds_left) + " left" : "window closed"
        ),
        el("span", "last", item.last_message ? item.last_message.text : "")
      );
      button.addEventListener("click", () => openConversation(item.conversation_id));
      li.append(button);
      list.append(li);
    }
  }

  // ------------------------------------------------------------- conversation
  async function openConversation(id) {
    if (state.conversationId !== id) {
      state.shownRaw.clear();
      state.chosen = null;
      $("reply-status").textContent = "";
      $("template-status").textContent = "";
      $("conv-status").textContent = "";
    }
    state.conversationId = id;
    $("conversation").hidden = false;
    await Promise.all([refreshConversation(), loadTemplates()]);
    refreshQueue();
  }

  async function refreshConversation() {
    if (!state.conversationId) return;
    let data;
    try {
      data = await api("GET", conversationPath());
    } catch (error) {
      $("conv-status").textContent = error.message;
      return;
    }
    syncClock(data.now);
    const handover = data.handover;
    const summary = data.summary;
    state.handoverOpen = handover.state === "waiting" || handover.state === "with_agent";
    $("conv-name").textContent = handover.contact_name || "Unknown contact";
    $("conv-number").textContent = handover.masked_number;
    $("conv-reason").textContent =
      handover.reason.replace(/_/g, " ") +
      (handover.reason_detail ? " (" + handover.reason_detail + ")" : "");
    $("conv-state").textContent = handover.state.replace(/_/g, " ");
    $("conv-agent").textContent = handover.agent || "nobody yet";
    $("take").disabled = !state.handoverOpen || handover.agent === agentName();
    $("handback").disabled = !state.handoverOpen;
    setWindow(data.window);
    renderSummary(summary);
    renderTimeline(data.timeline);
  }

  function setWindow(win) {
    state.windowOpen = win.open;
    state.windowExpiresAt = win.open ? win.expires_at : null;
    const free = win.free_entry_point_expires_at;
    $("window-label").textContent = win.open
      ? "Customer service window open until " + when(win.expires_at) + ":"
      : "Customer service window closed.";
    $("window").title = free ? "Free entry point window until " + when(free) : "";
    tick();
  }

  function tick() {
    const countdown = $("countdown");
    if (!state.conversationId) return;
    let open = state.windowOpen && state.windowExpiresAt !== null;
    if (open) {
      const left = state.windowExpiresAt - now();
      open = left > 0;
      countdown.textContent = open ? duration(left) + " left" : "0h 00m 00s left";
    } else {
      countdown.textContent = "";
    }
    $("window").classList.toggle("closed", !open);
    const reply = $("reply-text");
    const send = $("reply-send");
    let reason = "";
    if (!state.handoverOpen) {
      reason = "The conversation was handed back to the bot.";
    } else if (!open) {
      reason =
        "Free-form replies are off: the contact has not written in the last 24 hours. " +
        "Send an approved template below to reopen the conversation.";
    }
    reply.disabled = reason !== "";
    send.disabled = reason !== "";
    $("reply-disabled").textContent = reason;
  }

  function renderSummary(summary) {
    const detail = [];
    detail.push("Handed over " + when(summary.created_at));
    if (summary.window && summary.window.open) {
      detail.push("window then open until " + when(summary.window.expires_at));
    }
    $("summary-detail").textContent = detail.join(", ") + ".";
    const turns = $("summary-turns");
    turns.replaceChildren();
    for (const turn of summary.last_turns) {
      const li = el("li", "turn " + turn.speaker);
      li.append(el("span", "speaker", turn.speaker), el("span", "text", turn.text));
      turns.append(li);
    }
    const failures = $("summary-failures");
    failures.replaceChildren();
    if (summary.delivery_failures.length === 0) failures.append(el("li", "note", "None."));
    for (const failure of summary.delivery_failures) {
      failures.append(failureItem(failure.summary, failure.failure));
    }
  }

  function failureItem(summary, failure) {
    const li = el("li", "failure");
    li.append(el("span", "text", summary));
    if (failure) {
      const code = failure.error_code ? " (" + failure.error_code + ")" : "";
      li.append(el("p", "explanation", (failure.explanation || "") + code));
      if (failure.recommended_actions && failure.recommended_actions.length) {
        li.append(
          el("p", "note", "What to do: " + failure.recommended_actions.join(", ").replace(/_/g, " "))
        );
      }
    }
    return li;
  }

  function renderTimeline(entries) {
    const list = $("timeline-list");
    list.replaceChildren();
    entries.forEach((entry, index) => {
      const li = el("li", "entry " + (entry.direction === "in" ? "inbound" : "outbound"));
      const head = el("div", "head");
      head.append(
        el("span", "direction", entry.direction === "in" ? "Contact" : "Sent"),
        el("span", "kind", entry.kind),
        el("time", "at", when(entry.at)),
        el("span", "state", entry.state)
      );
      li.append(head, el("p", "text", entry.summary));
      if (entry.failure) li.append(failureItem("", entry.failure));
      if (entry.unsupported) li.append(unsupportedBlock(entry, index));
      if (entry.media) li.append(mediaBlock(entry.media));
      list.append(li);
    });
  }

  function mediaBlock(media) {
    // The file is fetched with the token in a header (never in the URL) and shown from a
    // blob: URL; the server marks anything but an image as an attachment.
    const box = el("div", "media");
    if (!media.url) {
      box.append(el("span", "media-state", "File: " + media.state + (media.reason ? " (" + media.reason + ")" : "")));
      return box;
    }
    const open = el("button", "media-open", "Open file");
    open.type = "button";
    open.addEventListener("click", async () => {
      const response = await fetch(media.url, {
        headers: { Authorization: "Bearer " + token() },
        credentials: "omit",
        cache: "no-store",
      });
      if (!response.ok) return;
      const link = document.createElement("a");
      link.href = URL.createObjectURL(await response.blob());
      link.download = media.filename || "";
      link.rel = "noopener";
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 60000);
    });
    box.append(open, el("span", "media-type", media.mime_type || ""));
    return box;
  }

  function unsupportedBlock(entry, index) {
    const key = entry.message_id || "entry-" + index;
    const box = el("div", "unsupported");
    const unsupported = entry.unsupported;
    box.append(
      el(
        "p",
        "note",
        "Unsupported message (" +
          unsupported.kind +
          "). Suggested: " +
          String(unsupported.recommended_action || "").replace(/_/g, " ")
      )
    );
    const toggle = el("button", "raw-toggle", "Show raw JSON");
    toggle.type = "button";
    const pre = el("pre", "raw-json");
    pre.textContent = JSON.stringify(unsupported.raw || entry.raw, null, 2);
    const show = (visible) => {
      pre.hidden = !visible;
      toggle.textContent = visible ? "Hide raw JSON" : "Show raw JSON";
      toggle.setAttribute("aria-expanded", String(visible));
    };
    show(state.shownRaw.has(key));
    toggle.addEventListener("click", () => {
      const visible = pre.hidden;
      if (visible) state.shownRaw.add(key);
      else state.shownRaw.delete(key);
      show(visible);
    });
    box.append(toggle, pre);
    return box;
  }

  // ------------------------------------------------------------------ actions
  async function take() {
    try {
      await api("POST", conversationPath("/take"), { agent: agentName() });
      $("conv-status").textContent = "You took this conversation.";
    } catch (error) {
      $("conv-status").textContent = error.message;
    }
    await refreshConversation();
    refreshQueue();
  }

  async function handBack() {
    try {
      await api("POST", conversationPath("/handback"));
      $("conv-status").textContent = "Handed back: the bot answers this contact again.";
    } catch (error) {
      $("conv-status").textContent = error.message;
    }
    await refreshConversation();
    refreshQueue();
  }

  async function sendReply(event) {
    event.preventDefault();
    const text = $("reply-text").value;
    if (!text.trim()) return;
    $("reply-send").disabled = true;
    try {
      await api("POST", conversationPath("/messages"), { text });
      $("reply-text").value = "";
      $("reply-status").textContent = "Reply sent.";
    } catch (error) {
      $("reply-status").textContent = "Not sent: " + error.message;
    }
    await refreshConversation();
  }

  // ---------------------------------------------------------------- templates
  function optionLabel(template) {
    let label = template.name + " (" + template.language + ", " + template.category.toLowerCase();
    if (template.price) label += ", " + template.price.amount + " " + template.price.currency;
    label += ")";
    if (!template.sendable && template.refusal && template.refusal.reason !== "missing_parameter") {
      label += " - " + template.refusal.reason.replace(/_/g, " ");
    }
    return label;
  }

  async function loadTemplates() {
    const select = $("template-select");
    select.replaceChildren();
    $("step-fill").hidden = true;
    $("step-review").hidden = true;
    let data;
    try {
      data = await api("GET", conversationPath("/templates"));
    } catch (error) {
      $("template-status").textContent = error.message;
      return;
    }
    state.templates = data.templates;
    const balance = data.balance.available;
    $("balance").textContent = "Balance: " + balance.amount + " " + balance.currency;
    const placeholder = el("option", "", "Choose a template...");
    placeholder.value = "";
    select.append(placeholder);
    data.templates.forEach((template, index) => {
      const option = el("option", "", optionLabel(template));
      option.value = String(index);
      const blocked = template.refusal && template.refusal.reason !== "missing_parameter";
      option.disabled = Boolean(blocked);
      select.append(option);
    });
  }

  function chooseTemplate() {
    const value = $("template-select").value;
    $("step-review").hidden = true;
    $("template-status").textContent = "";
    if (value === "") {
      state.chosen = null;
      $("step-fill").hidden = true;
      return;
    }
    state.chosen = state.templates[Number(value)];
    const box = $("template-params");
    box.replaceChildren();
    for (const parameter of state.chosen.parameters) {
      const label = el("label", "parameter");
      const name = /^\d+$/.test(parameter.key) ? "{{" + parameter.key + "}}" : parameter.key;
      label.append(el("span", "key", name + " "), el("span", "source note", parameter.source));
      const input = el("input");
      input.type = "text";
      input.value = parameter.value;
      input.dataset.key = parameter.key;
      input.required = true;
      if (parameter.missing) input.placeholder = "needs a value";
      label.append(input);
      box.append(label);
    }
    if (state.chosen.parameters.length === 0) {
      box.append(el("p", "note", "This template has no parameters."));
    }
    $("step-fill").hidden = false;
  }

  function filledParameters() {
    const values = {};
    for (const input of $("template-params").querySelectorAll("input[data-key]")) {
      values[input.dataset.key] = input.value;
    }
    return values;
  }

  async function reviewTemplate() {
    if (!state.chosen) return;
    let data;
    try {
      data = await api("POST", conversationPath("/templates/preview"), {
        name: state.chosen.name,
        language: state.chosen.language,
        parameters: filledParameters(),
      });
    } catch (error) {
      $("template-status").textContent = error.message;
      return;
    }
    $("template-text").textContent = data.text;
    const price = data.price;
    const balance = data.balance.available;
    $("template-price").textContent = price
      ? "Price: " + price.amount + " " + price.currency + " (balance " + balance.amount + " " +
        balance.currency + ")"
      : "No price for this template.";
    let refusal = "";
    if (data.refusal) refusal = data.refusal.detail;
    else if (!data.affordable) refusal = "The balance is too low to send this template.";
    $("template-refusal").textContent = refusal;
    $("template-send").disabled = !data.sendable || !data.affordable || !state.handoverOpen;
    $("step-review").hidden = false;
  }

  async function sendTemplate() {
    if (!state.chosen) return;
    $("template-send").disabled = true;
    try {
      const data = await api("POST", conversationPath("/templates"), {
        name: state.chosen.name,
        language: state.chosen.language,
        parameters: filledParameters(),
      });
      $("template-status").textContent =
        "Template sent: " + data.name + " (" + data.language + "), " + data.price.amount + " " +
        data.price.currency + ".";
      $("step-review").hidden = true;
    } catch (error) {
      $("template-status").textContent = "Not sent: " + error.message;
    }
    await Promise.all([refreshConversation(), loadTemplates()]);
  }

  // -------------------------------------------------------------------- start
  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
      sessionStorage.setItem(NAME_KEY, $("agent-name").value.trim());
      $("token").value = "";
      showInbox();
    });
    $("sign-out").addEventListener("click", () => signOut(""));
    $("take").addEventListener("click", take);
    $("handback").addEventListener("click", handBack);
    $("reply-form").addEventListener("submit", sendReply);
    $("template-select").addEventListener("change", chooseTemplate);
    $("template-review").addEventListener("click", reviewTemplate);
    $("template-send").addEventListener("click", sendTemplate);
    setInterval(tick, 1000);
    setInterval(refreshQueue, QUEUE_REFRESH_MS);
    setInterval(refreshConversation, CONVERSATION_REFRESH_MS);
    if (token() && agentName()) showInbox();
    else showLogin("");
  });
})();
