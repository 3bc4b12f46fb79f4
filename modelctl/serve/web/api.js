// The server's JSON routes, with the key this tab was given (sessionStorage). A 401 shows the
// key form; the request is sent again once a key is given.
import { $ } from "./dom.js";

const STORE = "modelctl-key";
let asking = null; // the promise of the key form while it is shown

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function headers(extra) {
  const key = sessionStorage.getItem(STORE);
  return key ? {...extra, authorization: "Bearer " + key} : {...extra};
}

function askKey(refused) {
  if (asking) return asking;
  const form = $("key-form");
  $("key-note").textContent = refused ? "that key was refused" : "";
  form.hidden = false;
  $("key").focus();
  asking = new Promise((resolve) => {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(STORE, $("key").value.trim());
      $("key").value = "";
      form.hidden = true;
      asking = null;
      resolve();
    }, {once: true});
  });
  return asking;
}

/** The error message of a failed response (OpenAI-shaped when it is the server's). */
export async function failure(response) {
  let message = response.statusText || "request failed";
  try {
    const body = await response.json();
    if (body && body.error && typeof body.error.message === "string") message = body.error.message;
  } catch { /* not JSON */ }
  return new ApiError(response.status, `${response.status}: ${message}`);
}

/** fetch() with the key; a 401 asks for one and tries again. */
export async function send(path, init = {}) {
  for (;;) {
    const used = sessionStorage.getItem(STORE);
    const response = await fetch(path, {...init, headers: headers(init.headers)});
    if (response.status !== 401) return response;
    // a request sent with an older key while another key was given: send it again with that one
    if (sessionStorage.getItem(STORE) !== used) continue;
    await askKey(used !== null);
  }
}

/** GET or POST JSON; an ApiError when the server says no. */
export async function json(path, body) {
  const init = body === undefined ? {} :
    {method: "POST", body: JSON.stringify(body), headers: {"content-type": "application/json"}};
  const response = await send(path, init);
  if (!response.ok) throw await failure(response);
  return response.json();
}
