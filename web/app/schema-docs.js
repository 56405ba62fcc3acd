// Starts Swagger UI (vendored from npm: web/vendor) on the server's OpenAPI schema.
// An external file because the pages' Content-Security-Policy forbids inline scripts.
const root = document.getElementById("swagger-ui");
window.ui = window.SwaggerUIBundle({
  url: root.dataset.schemaUrl,
  domNode: root,
  deepLinking: true,
  presets: [window.SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
