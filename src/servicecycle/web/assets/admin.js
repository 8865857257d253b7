// Service rules admin pages: small helpers on top of plain forms, which work without them.
(() => {
  // 24/7 overrides the weekday hours: show them as set aside (read-only keeps them submitted).
  const syncAlwaysOpen = (box) => {
    const days = box.form && box.form.querySelector("[data-days]");
    if (!days) return;
    days.classList.toggle("is-off", box.checked);
    for (const input of days.querySelectorAll("input")) input.readOnly = box.checked;
  };

  // A new rule's events matter only for triggers; the time-rule hint only for time rules.
  const syncKind = (select) => {
    for (const part of select.form.querySelectorAll("[data-for-kind]")) {
      part.hidden = part.dataset.forKind !== select.value;
    }
  };

  const insertAtCursor = (field, text) => {
    const start = field.selectionStart ?? field.value.length;
    const end = field.selectionEnd ?? start;
    field.value = field.value.slice(0, start) + text + field.value.slice(end);
    field.focus();
    field.selectionStart = field.selectionEnd = start + text.length;
  };

  document.addEventListener("change", (event) => {
    const target = event.target;
    if (!(target instanceof HTMLElement)) return;
    if (target.matches("[data-always-open]")) syncAlwaysOpen(target);
    if (target.matches("[data-rule-kind]")) syncKind(target);
  });

  document.addEventListener("click", (event) => {
    if (!(event.target instanceof Element)) return;
    const copy = event.target.closest("[data-copy-monday]");
    if (copy) {
      const form = copy.form;
      const monday = form.querySelector("[name=day0]");
      for (let day = 1; day <= 4; day += 1) {
        form.querySelector(`[name=day${day}]`).value = monday.value;
      }
      // tell the live preview (htmx listens for input on the form)
      monday.dispatchEvent(new Event("input", { bubbles: true }));
      return;
    }
    const chip = event.target.closest("[data-insert]");
    if (chip) {
      const field = chip.closest("form").querySelector("[data-placeholder-target]");
      if (field) insertAtCursor(field, chip.dataset.insert);
      return;
    }
    const format = event.target.closest("[data-format-json]");
    if (format) {
      for (const area of format.form.querySelectorAll("textarea.json")) {
        try {
          area.value = JSON.stringify(JSON.parse(area.value || "[]"), null, 2);
        } catch {
          // left as typed: the server names the line and column when the form is saved
        }
      }
    }
  });

  document.addEventListener("DOMContentLoaded", () => {
    for (const box of document.querySelectorAll("[data-always-open]")) syncAlwaysOpen(box);
    for (const select of document.querySelectorAll("[data-rule-kind]")) syncKind(select);
  });
})();
