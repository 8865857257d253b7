// The interactive API reference, from the npm-built Swagger UI (nothing loads from a CDN).
window.addEventListener("load", () => {
  window.SwaggerUIBundle({
    url: "/api/v1/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    requestInterceptor: (request) => {
      const token = document.body.dataset.csrf;
      if (token) request.headers["X-CSRF-Token"] = token;
      return request;
    },
  });
});
