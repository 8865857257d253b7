// Builds the web UI's static folder from npm packages and our own assets.
// The output folder is git-ignored: no third-party file is committed.
import { copyFileSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const web = join(root, "src", "servicecycle", "web");
const out = join(web, "static");

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "vendor"), { recursive: true });
const vendor = [
  ["htmx.org/dist/htmx.min.js", "htmx.min.js"],
  ["swagger-ui-dist/swagger-ui-bundle.js", "swagger-ui-bundle.js"],
  ["swagger-ui-dist/swagger-ui.css", "swagger-ui.css"],
];
for (const [from, to] of vendor) {
  copyFileSync(join(root, "node_modules", from), join(out, "vendor", to));
}
for (const name of readdirSync(join(web, "assets"))) {
  copyFileSync(join(web, "assets", name), join(out, name));
}
console.log(`assets built in ${out}`);
