// Servicecycle live-chat widget. Embed with one tag:
//   <script src="https://desk.example.com/chat/widget.js" data-desk="https://desk.example.com" async></script>
// It draws a launcher and a small chat panel in a shadow root (so the host page's CSS and
// ours never mix), talks to the desk over a WebSocket, and keeps a signed visitor token in
// localStorage so a reload resumes the same chat. Message bodies arrive sanitised by the
// desk. No third-party code, no inline styles or scripts (works under a strict CSP).
(() => {
  "use strict";
  const script = document.currentScript;
  if (!script || window.__servicecycleChat) return;
  window.__servicecycleChat = true;

  const desk = (script.dataset.desk || new URL(script.src).origin).replace(/\/+$/, "");
  const socketUrl = desk.replace(/^http/, "ws") + "/chat/ws/visitor";
  const tokenKey = "servicecycle-chat:" + desk;

  const el = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    children.forEach((child) => node.append(child));
    return node;
  };

  // -- the panel ---------------------------------------------------------------------------
  const host = el("div", { id: "servicecycle-chat" });
  const root = host.attachShadow({ mode: "open" });
  root.append(el("link", { rel: "stylesheet", href: desk + "/chat/widget.css" }));

  const bubble = () => {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("class", "sc-launcher-icon");
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z");
    svg.append(path);
    return svg;
  };
  const launcher = el("button", { class: "sc-launcher", type: "button", "aria-expanded": "false" },
    bubble(), el("span", { text: "Chat with us" }));
  const closeButton = el("button", { class: "sc-close", type: "button", "aria-label": "Minimise chat", text: "–" });
  const endButton = el("button", { class: "sc-end", type: "button", text: "End chat", hidden: "" });
  const status = el("p", { class: "sc-status", role: "status" });
  const lines = el("div", { class: "sc-lines", role: "log", "aria-live": "polite" });
  const error = el("p", { class: "sc-error", role: "alert", hidden: "" });

  const nameInput = el("input", { class: "sc-name", name: "name", autocomplete: "name", maxlength: "120", id: "sc-name" });
  const emailInput = el("input", { class: "sc-email", name: "email", type: "email", autocomplete: "email", id: "sc-email" });
  const emailLabel = el("label", { for: "sc-email", text: "E-mail (optional)" });
  const firstInput = el("textarea", { class: "sc-first", name: "text", rows: "3", required: "", id: "sc-first" });
  const intro = el("form", { class: "sc-intro" },
    el("label", { for: "sc-name", text: "Your name" }), nameInput,
    emailLabel, emailInput,
    el("label", { for: "sc-first", text: "How can we help?" }), firstInput,
    el("button", { type: "submit", class: "sc-primary sc-start", text: "Start chat" }));

  const askInput = el("input", { class: "sc-ask-input", type: "email", autocomplete: "email", required: "", "aria-label": "Your e-mail address" });
  const ask = el("form", { class: "sc-ask", hidden: "" },
    el("p", { class: "sc-ask-text", text: "Leave your e-mail address and we will reply by mail." }),
    el("div", { class: "sc-row" }, askInput, el("button", { type: "submit", class: "sc-primary", text: "Save" })));

  const input = el("textarea", { class: "sc-input", rows: "2", "aria-label": "Your message", placeholder: "Write a message…" });
  const compose = el("form", { class: "sc-compose", hidden: "" },
    input, el("button", { type: "submit", class: "sc-primary sc-send", text: "Send" }));

  // the rating asked when a chat has ended: one click on a score, an optional comment
  const rateQuestion = el("p", { class: "sc-rating-question" });
  const rateScale = el("div", { class: "sc-scores", role: "group", "aria-label": "Your rating" });
  const rateEnds = el("p", { class: "sc-scale-ends" });
  const rateComment = el("textarea", { class: "sc-rating-comment", rows: "2", maxlength: "4000", id: "sc-rating-comment" });
  const rateCommentLabel = el("label", { for: "sc-rating-comment", text: "Comment (optional)" });
  const rateThanks = el("p", { class: "sc-rated", role: "status", hidden: "" });
  const rating = el("form", { class: "sc-rating", hidden: "" },
    el("strong", { class: "sc-rating-title", text: "How did we do?" }), rateQuestion, rateScale, rateEnds,
    rateCommentLabel, rateComment,
    el("button", { type: "submit", class: "sc-primary sc-rate-send", text: "Send rating" }), rateThanks);

  const restart = el("button", { class: "sc-restart", type: "button", hidden: "", text: "Start a new chat" });
  const panel = el("section", { class: "sc-panel", hidden: "", "aria-label": "Chat" },
    el("header", { class: "sc-head" }, el("strong", { text: "Chat" }), endButton, closeButton),
    status, lines, error, intro, ask, compose, rating, restart);
  root.append(launcher, panel);

  // -- state -------------------------------------------------------------------------------
  let socket = null;
  let open = false;
  let ready = false;
  let hasChat = false;
  let agentsOnline = true;
  let offlineText = "";
  let retry = 500;
  let stopped = false;
  const seen = new Set();
  const queue = [];
  let chosen = null; // the score picked in the rating form

  const show = (node, visible) => { node.hidden = !visible; };
  const say = (text) => { status.textContent = text; };
  const fail = (text) => { error.textContent = text; show(error, Boolean(text)); };

  const send = (frame) => {
    if (socket && ready) socket.send(JSON.stringify(frame));
    else { queue.push(frame); connect(); }
  };

  const addLine = (frame) => {
    if (seen.has(frame.id)) return;
    seen.add(frame.id);
    const body = el("div", { class: "sc-body" });
    body.innerHTML = frame.html; // sanitised by the desk (nh3) before it was sent
    const line = el("div", { class: "sc-line sc-from-" + frame.from, "data-id": String(frame.id) },
      el("span", { class: "sc-who", text: frame.from === "agent" ? frame.name : "You" }), body);
    lines.append(line);
    lines.scrollTop = lines.scrollHeight;
  };

  const chatMode = (on) => {
    hasChat = on;
    show(intro, !on);
    show(compose, on);
    show(endButton, on);
    show(restart, false);
  };

  const introMode = () => {
    chatMode(false);
    emailLabel.textContent = agentsOnline ? "E-mail (optional)" : "E-mail (needed: we reply by mail)";
    if (agentsOnline) emailInput.removeAttribute("required");
    else emailInput.setAttribute("required", "");
  };

  const onState = (frame) => {
    show(ask, false);
    if (frame.state === "waiting") say("Waiting for an agent…");
    else if (frame.state === "active") say((frame.agent || "An agent") + " is here.");
    else if (frame.state === "missed") {
      say(frame.email_known ? "Nobody could answer live: we will reply by e-mail." : offlineText);
      show(ask, !frame.email_known);
    } else if (frame.state === "ended") {
      say(frame.email_known ? "Chat ended. Any later reply comes by e-mail." : "Chat ended.");
      show(compose, false);
      show(endButton, false);
      show(restart, true);
      hasChat = false;
    }
    if (frame.state !== "ended" && !hasChat) chatMode(true);
  };

  const pick = (score) => {
    chosen = score;
    for (const button of rateScale.children) {
      button.setAttribute("aria-pressed", String(Number(button.dataset.score) === score));
    }
  };

  const askRating = (frame) => {
    rateQuestion.textContent = frame.question;
    rateEnds.textContent = frame.low_label
      ? frame.scale_min + " = " + frame.low_label + ", " + frame.scale_max + " = " + frame.high_label
      : "";
    rateScale.replaceChildren();
    for (let score = frame.scale_min; score <= frame.scale_max; score += 1) {
      const button = el("button", { type: "button", class: "sc-score", "data-score": String(score),
        "aria-pressed": "false", text: String(score) });
      button.addEventListener("click", () => {
        pick(score);
        fail("");
        // the box shows the comment given so far: what it holds now (even "") is the comment
        send({ type: "rate", score, comment: rateComment.value.trim() });
      });
      rateScale.append(button);
    }
    rateComment.value = frame.comment || "";
    pick(frame.score);
    rateThanks.textContent = frame.score === null ? "" : "Thank you for your rating.";
    show(rateThanks, frame.score !== null);
    show(rating, true);
    lines.scrollTop = lines.scrollHeight; // the last words stay in view above the question
  };

  const onFrame = (frame) => {
    if (frame.type === "welcome") {
      localStorage.setItem(tokenKey, frame.token);
      agentsOnline = frame.agents_online;
      offlineText = frame.offline_text;
      input.setAttribute("maxlength", String(frame.max_chars));
      firstInput.setAttribute("maxlength", String(frame.max_chars));
      ready = true;
      retry = 500;
      if (frame.chat) chatMode(true);
      else {
        introMode();
        say(agentsOnline ? frame.greeting : frame.offline_text);
      }
      if (frame.chat && !open) toggle(true);
      while (queue.length) socket.send(JSON.stringify(queue.shift()));
    } else if (frame.type === "line") {
      addLine(frame);
      if (!open && frame.from === "agent") toggle(true);
    } else if (frame.type === "state") {
      onState(frame);
    } else if (frame.type === "rating") {
      askRating(frame);
    } else if (frame.type === "rated") {
      pick(frame.score);
      rateThanks.textContent = frame.comment
        ? "Thank you for your rating and your comment."
        : "Thank you for your rating.";
      show(rateThanks, true);
    } else if (frame.type === "error") {
      if (frame.code === "bad_token") {
        localStorage.removeItem(tokenKey);
        return;
      }
      if (frame.fields && frame.fields.email && !hasChat) {
        agentsOnline = false;
        introMode();
        emailInput.focus();
      }
      fail(frame.message);
    }
  };

  function connect() {
    if (socket || stopped) return;
    socket = new WebSocket(socketUrl);
    socket.addEventListener("open", () => {
      socket.send(JSON.stringify({ type: "hello", token: localStorage.getItem(tokenKey) }));
    });
    socket.addEventListener("message", (event) => {
      try { onFrame(JSON.parse(event.data)); } catch (e) { /* a frame we do not know */ }
    });
    socket.addEventListener("close", (event) => {
      socket = null;
      ready = false;
      if (event.code === 4403 || event.code === 1008) {
        stopped = true;
        say("Chat is not available on this site.");
        return;
      }
      if (event.code === 4401) { retry = 0; } // token refused: start over with a new one
      setTimeout(connect, retry);
      retry = Math.min(retry * 2 || 500, 15000);
    });
  }

  function toggle(force) {
    open = force === undefined ? !open : force;
    show(panel, open);
    launcher.setAttribute("aria-expanded", String(open));
    if (open) {
      connect();
      (hasChat ? input : nameInput).focus();
    }
  }

  // -- events ------------------------------------------------------------------------------
  launcher.addEventListener("click", () => toggle());
  closeButton.addEventListener("click", () => toggle(false));
  intro.addEventListener("submit", (event) => {
    event.preventDefault();
    fail("");
    const text = firstInput.value.trim();
    if (!text) return;
    send({ type: "start", name: nameInput.value.trim(), email: emailInput.value.trim() || null, text });
    firstInput.value = "";
  });
  compose.addEventListener("submit", (event) => {
    event.preventDefault();
    fail("");
    const text = input.value.trim();
    if (!text) return;
    send({ type: "say", text });
    input.value = "";
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      compose.requestSubmit();
    }
  });
  ask.addEventListener("submit", (event) => {
    event.preventDefault();
    fail("");
    send({ type: "email", email: askInput.value.trim() });
  });
  endButton.addEventListener("click", () => send({ type: "end" }));
  rating.addEventListener("submit", (event) => {
    event.preventDefault();
    if (chosen === null) { fail("Please choose a score."); return; }
    fail("");
    send({ type: "rate", score: chosen, comment: rateComment.value.trim() }); // "" clears it
  });
  restart.addEventListener("click", () => {
    show(rating, false);
    chosen = null;
    lines.replaceChildren();
    seen.clear();
    introMode();
    say("");
  });

  const mount = () => {
    document.body.append(host);
    if (localStorage.getItem(tokenKey)) connect(); // resume a chat after a reload
  };
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
