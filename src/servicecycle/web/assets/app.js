// Sends the page's CSRF token with every htmx request that changes something.
document.addEventListener("htmx:configRequest", (event) => {
  const token = document.body.dataset.csrf;
  if (token && event.detail.verb !== "get") {
    event.detail.headers["X-CSRF-Token"] = token;
  }
});
