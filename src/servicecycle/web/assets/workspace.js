// Keyboard shortcuts and the reply editor of the agent workspace (inbox and ticket pages).
// Shortcuts are plain letters, so they are ignored while typing in a form field.
(() => {
  "use strict";

  const typing = (target) =>
    target instanceof HTMLElement &&
    (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));

  // -- inbox: j/k move a visible selection, Enter or o opens it --------------------------------
  const list = document.querySelector("[data-keyboard-list]");
  const rows = list ? Array.from(list.querySelectorAll("tr[data-row]")) : [];
  let selected = -1;

  const select = (index) => {
    if (!rows.length) return;
    selected = Math.max(0, Math.min(rows.length - 1, index));
    rows.forEach((row, i) => row.classList.toggle("is-selected", i === selected));
    const link = rows[selected].querySelector("a");
    if (link) link.focus({ preventScroll: false });
  };

  // a click or Tab onto a row's link moves the selection there too
  rows.forEach((row, i) => row.addEventListener("focusin", () => {
    if (selected !== i) {
      rows.forEach((r, j) => r.classList.toggle("is-selected", j === i));
      selected = i;
    }
  }));

  const open = () => {
    const link = selected >= 0 ? rows[selected].querySelector("a") : null;
    if (link) window.location.assign(link.href);
  };

  // -- ticket page: r replies, n writes an internal note -----------------------------------------
  const editor = document.querySelector("form[data-editor]");
  const body = editor ? editor.querySelector("textarea[name=body]") : null;
  const submit = editor ? editor.querySelector("[data-submit]") : null;
  const macro = editor ? editor.querySelector("select[data-macro-select]") : null;
  const files = editor ? editor.querySelector("input[type=file][data-max-bytes]") : null;
  // the presence poll tells colleagues whether I am writing (the editor has text)
  const replying = document.querySelector("input[data-replying]");

  const showMode = () => {
    if (!editor) return;
    const note = editor.querySelector("input[name=kind][value=note]").checked;
    editor.classList.toggle("is-note", note);
    if (submit) {
      submit.textContent = macro && macro.value ? "Apply macro" : note ? "Add note" : "Send reply";
    }
  };

  const noteTyping = () => {
    if (replying && body) replying.value = body.value.trim() ? "1" : "";
  };

  // choosing a macro fills the editor with its reply for this ticket, ready to edit
  const fillFromMacro = async () => {
    showMode();
    if (!macro || !macro.value || !body) return;
    const response = await fetch(macro.dataset.preview + encodeURIComponent(macro.value), {
      headers: { accept: "application/json" },
      credentials: "same-origin",
    });
    if (!response.ok) return;
    const shown = await response.json();
    body.value = shown.body;
    editor.querySelector(`input[name=kind][value=${shown.kind === "note" ? "note" : "reply"}]`).checked = true;
    showMode();
    noteTyping();
    body.focus();
  };

  // files over the limits are refused before anything is sent (the server checks again; a
  // request over the total limit would be refused before the page could keep the text)
  const mib = (bytes) => `${(bytes / 1048576).toFixed(1)} MiB`;
  const checkFiles = () => {
    if (!files) return;
    const limit = Number(files.dataset.maxBytes);
    const total = Number(files.dataset.maxTotal);
    const chosen = Array.from(files.files);
    const big = chosen.find((file) => file.size > limit);
    const sum = chosen.reduce((bytes, file) => bytes + file.size, 0);
    files.setCustomValidity(
      big
        ? `${big.name} is larger than ${mib(limit)}`
        : sum > total
          ? `Together the files are larger than ${mib(total)}: send them in two messages`
          : "",
    );
    if (big || sum > total) files.reportValidity();
  };

  const write = (kind) => {
    if (!editor || !body) return;
    editor.querySelector(`input[name=kind][value=${kind}]`).checked = true;
    showMode();
    body.focus();
  };

  if (editor) {
    editor.addEventListener("change", (event) => {
      if (event.target === macro) fillFromMacro();
      else if (event.target === files) checkFiles();
      else showMode();
    });
    body.addEventListener("input", noteTyping);
    showMode();
    // Escape leaves the editor (keeping the text) so the shortcuts work again
    body.addEventListener("keydown", (event) => {
      if (event.key === "Escape") body.blur();
    });
    // a second click cannot send the same reply twice
    editor.addEventListener("submit", () => {
      if (submit) submit.disabled = true;
    });
    // ...but a page restored by the Back button gets a working button again
    window.addEventListener("pageshow", () => {
      if (submit) submit.disabled = false;
    });
  }

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
    if (typing(event.target)) return;
    const key = event.key;
    if (rows.length && (key === "j" || key === "k")) {
      event.preventDefault();
      select(selected < 0 ? 0 : selected + (key === "j" ? 1 : -1));
    } else if (rows.length && selected >= 0 && (key === "o" || key === "Enter")) {
      event.preventDefault();
      open();
    } else if (editor && (key === "r" || key === "n")) {
      event.preventDefault();
      write(key === "r" ? "reply" : "note");
    }
  });
})();
