// The agents' live-chat page: the list of waiting and active chats and one conversation,
// both kept live over the agent WebSocket (/chat/ws/agent, signed-in session cookie).
(() => {
  "use strict";
  const desk = document.querySelector("[data-chat-desk]");
  if (!desk) return;
  const $ = (sel) => document.querySelector(sel);
  const list = $("[data-chat-list]");
  const empty = $("[data-chat-empty]");
  const count = $("[data-chat-count]");
  const none = $("[data-chat-none]");
  const openPane = $("[data-chat-open]");
  const title = $("[data-chat-title]");
  const statePill = $("[data-chat-state]");
  const ticketLink = $("[data-chat-ticket]");
  const takeButton = $("[data-chat-take]");
  const endButton = $("[data-chat-end]");
  const lines = $("[data-chat-lines]");
  const error = $("[data-chat-error]");
  const compose = $("[data-chat-compose]");
  const input = compose.querySelector("textarea");

  const baseTitle = document.title;
  let socket = null;
  let watching = null;
  let retry = 500;
  const seen = new Set();
  const names = new Map();

  const el = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const send = (frame) => socket && socket.readyState === 1 && socket.send(JSON.stringify(frame));
  const fail = (text) => { error.textContent = text || ""; error.hidden = !text; };

  const renderList = (items) => {
    list.replaceChildren(...items.map((c) => {
      names.set(c.ticket_id, c.visitor);
      const button = el("button", "chat-item" + (c.ticket_id === watching ? " is-selected" : ""));
      button.type = "button";
      button.dataset.ticket = String(c.ticket_id);
      const head = el("span", "chat-item-head");
      head.append(el("strong", "", c.visitor),
        el("span", "pill state-" + c.state, c.state + (c.agent ? " · " + c.agent : "")));
      button.append(head, el("span", "chat-item-line", c.last_line));
      const li = el("li");
      li.append(button);
      return li;
    }));
    count.textContent = String(items.length);
    empty.hidden = items.length > 0;
    // waiting chats show in the tab's title, so a new one is noticed from another tab
    const waiting = items.filter((c) => c.state === "waiting").length;
    document.title = (waiting ? "(" + waiting + ") " : "") + baseTitle;
  };

  const watch = (ticketId) => {
    watching = ticketId;
    seen.clear();
    lines.replaceChildren();
    fail("");
    none.hidden = true;
    openPane.hidden = false;
    title.textContent = names.get(ticketId) || "Chat";
    ticketLink.href = "/tickets/" + ticketId;
    ticketLink.textContent = "Ticket #" + ticketId;
    list.querySelectorAll(".chat-item").forEach((b) =>
      b.classList.toggle("is-selected", Number(b.dataset.ticket) === ticketId));
    send({ type: "watch", ticket_id: ticketId });
  };

  const addLine = (frame) => {
    if (frame.ticket_id !== watching || seen.has(frame.id)) return;
    seen.add(frame.id);
    const line = el("div", "chat-line from-" + frame.from);
    line.dataset.id = String(frame.id);
    const body = el("div", "chat-body");
    body.innerHTML = frame.html; // sanitised by the server (nh3)
    line.append(el("span", "chat-who", frame.name), body);
    lines.append(line);
    lines.scrollTop = lines.scrollHeight;
  };

  const onState = (frame) => {
    if (frame.ticket_id !== watching) return;
    statePill.textContent = frame.state + (frame.agent ? " · " + frame.agent : "");
    statePill.className = "pill state-" + frame.state;
    takeButton.hidden = frame.state !== "waiting";
    endButton.hidden = !(frame.state === "active" && frame.mine);
    compose.hidden = !(frame.state === "active" && frame.mine);
    if (!compose.hidden && document.activeElement !== input) input.focus();
  };

  const onFrame = (frame) => {
    if (frame.type === "chats") renderList(frame.items);
    else if (frame.type === "line") addLine(frame);
    else if (frame.type === "state") onState(frame);
    else if (frame.type === "error") fail(frame.message);
  };

  const connect = () => {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + "/chat/ws/agent");
    socket.addEventListener("open", () => {
      retry = 500;
      desk.dataset.connected = "true";
      if (watching !== null) watch(watching);
    });
    socket.addEventListener("message", (event) => onFrame(JSON.parse(event.data)));
    socket.addEventListener("close", (event) => {
      desk.dataset.connected = "false";
      if (event.code === 4403) { fail("Sign in again to answer chats."); return; }
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 15000);
    });
  };

  list.addEventListener("click", (event) => {
    const button = event.target.closest(".chat-item");
    if (button) watch(Number(button.dataset.ticket));
  });
  takeButton.addEventListener("click", () => { fail(""); send({ type: "take", ticket_id: watching }); });
  endButton.addEventListener("click", () => send({ type: "end", ticket_id: watching }));
  compose.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    fail("");
    send({ type: "say", ticket_id: watching, text });
    input.value = "";
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      compose.requestSubmit();
    }
  });

  // availability: the same API the rest of the app uses
  document.querySelectorAll("[data-set-availability]").forEach((button) =>
    button.addEventListener("click", async () => {
      const status = button.dataset.setAvailability;
      const response = await fetch("/api/v1/me/availability", {
        method: "PUT",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": document.body.dataset.csrf },
        body: JSON.stringify({ status }),
      });
      if (!response.ok) { fail("Could not change your availability."); return; }
      $("[data-availability]").textContent = status;
      document.querySelectorAll("[data-set-availability]").forEach((b) =>
        b.classList.toggle("is-on", b === button));
    }));

  connect();
})();
