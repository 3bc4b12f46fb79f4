// The page of `modelctl serve`: three views over the server's own API, same origin, no build step.
import * as chat from "./chat.js";
import * as models from "./models.js";
import * as spending from "./spending.js";
import { $, status } from "./dom.js";

const VIEWS = {chat: () => chat.loadSessions(), models: models.load, spending: spending.load};

function show(view) {
  for (const name of Object.keys(VIEWS)) {
    $("view-" + name).hidden = name !== view;
    $("tab-" + name).setAttribute("aria-selected", String(name === view));
  }
  VIEWS[view]();
}

for (const name of Object.keys(VIEWS)) $("tab-" + name).addEventListener("click", () => show(name));
chat.setUp();
models.setUp();
spending.setUp();
// The data is asked for once the page has painted: the first paint waits for the HTML and CSS only.
requestAnimationFrame(() => setTimeout(() => {
  chat.loadModels().catch((error) => status(`models: ${error.message}`));
  chat.loadSessions();
}));
