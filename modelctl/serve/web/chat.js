// The Chat view: a model from /v1/models, answers streamed from /v1/chat/completions (SSE read
// from the fetch's ReadableStream), a conversation of the history continued.
import { failure, json, send } from "./api.js";
import { $, el, status } from "./dom.js";
import { count, price, seconds, usd } from "./format.js";
import { MarkdownView, renderInto } from "./markdown.js";

let models = []; // /v1/models' rows
let messages = []; // the conversation the next question is added to
let continuing = null; // the id of the history's conversation it goes on, sent as a hint for the log
let running = null; // the AbortController of the answer being streamed

function describe(model) {
  const extra = model.modelctl || {};
  if (extra.fallback) return `fallback: ${extra.fallback.join(" → ")}`;
  const parts = [extra.local ? "local" : extra.kind || model.owned_by];
  if (model.context_window) parts.push(`${count(model.context_window)} context`);
  parts.push(price(model.pricing) || "price unknown");
  return parts.join(" · ");
}

export async function loadModels() {
  const select = $("model-select");
  const kept = select.value;
  models = (await json("/v1/models")).data || [];
  select.replaceChildren();
  for (const m of models) select.append(el("option", {value: m.id}, `${m.id} — ${describe(m)}`));
  if (models.some((m) => m.id === kept)) select.value = kept;
  showModel();
}

function showModel() {
  const model = models.find((m) => m.id === $("model-select").value);
  $("model-info").textContent = model ? describe(model) : "no model can answer here now";
}

// --- messages ----------------------------------------------------------------------------------

function userMessage(text) {
  $("messages").append(el("div", {class: "message user"}, el("div", {class: "content"}, text)));
}

/** An answer's element: its model, folded reasoning, Markdown content and stats. */
function answerMessage(model) {
  const thought = el("div", {class: "thought"});
  const reasoning = el("details", {class: "reasoning", hidden: true}, el("summary", {}, "Reasoning"), thought);
  const content = el("div", {class: "content"});
  const stats = el("div", {class: "stats"});
  const node = el("div", {class: "message assistant", "data-state": "streaming"},
    el("div", {class: "meta"}, model), reasoning, content, stats);
  $("messages").append(node);
  return {node, reasoning, thought, content, stats};
}

function scrollDown() {
  const box = $("messages");
  box.scrollTop = box.scrollHeight;
}

function statsLine(usage, extra, elapsed, streamed) {
  const parts = [];
  if (usage) {
    parts.push(`${usage.prompt_tokens} in · ${usage.completion_tokens} out`);
    const cached = usage.prompt_tokens_details && usage.prompt_tokens_details.cached_tokens;
    if (cached) parts.push(`${cached} cached`);
    if (streamed > 0 && usage.completion_tokens) parts.push(`${(usage.completion_tokens / streamed).toFixed(1)} tok/s`);
  }
  if (elapsed !== null) parts.push(seconds(elapsed));
  if (extra) {
    parts.push(extra.cost === null || extra.cost === undefined ? "cost unknown" : usd(extra.cost));
    if (extra.deployment) parts.push(extra.deployment);
    if (extra.fallbacks && extra.fallbacks.length) parts.push(`after ${extra.fallbacks.length} fallback(s)`);
  }
  return parts.join(" · ");
}

// --- streaming -----------------------------------------------------------------------------------

/** The `data:` payloads of a server-sent event stream, as they arrive. */
async function* events(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const {value, done} = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const data = buffer.slice(0, end).split("\n").filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).replace(/^ /, "")).join("\n");
      buffer = buffer.slice(end + 2);
      if (data) yield data;
    }
  }
}

/** Stream one answer into `shown`; what was read: text, usage, the "modelctl" object, an error. */
async function stream(model, signal, shown) {
  const read = {text: "", usage: null, extra: null, error: null, first: null};
  const view = new MarkdownView(shown.content);
  try {
    const headers = {"content-type": "application/json"};
    if (continuing !== null) headers["x-modelctl-conversation"] = String(continuing);
    const response = await send("/v1/chat/completions", {
      method: "POST", signal, headers,
      body: JSON.stringify({model, messages, stream: true, stream_options: {include_usage: true}}),
    });
    if (!response.ok) throw await failure(response);
    for await (const data of events(response)) {
      if (data === "[DONE]") break;
      const chunk = JSON.parse(data);
      if (chunk.error) read.error = chunk.error.message || "the answer broke off";
      if (chunk.usage) read.usage = chunk.usage;
      if (chunk.modelctl) read.extra = chunk.modelctl;
      const delta = (chunk.choices && chunk.choices[0] && chunk.choices[0].delta) || {};
      if (delta.reasoning_content) {
        shown.reasoning.hidden = false;
        shown.thought.append(delta.reasoning_content);
      }
      if (delta.content) {
        read.text += delta.content;
        view.set(read.text);
      }
      if ((delta.content || delta.reasoning_content) && read.first === null) read.first = performance.now();
    }
  } catch (error) {
    read.error = error.name === "AbortError" ? "stopped" : error.message;
  }
  await view.end();
  return read;
}

async function ask(question) {
  const model = $("model-select").value;
  if (running || !model || !question.trim()) return;
  messages.push({role: "user", content: question});
  userMessage(question);
  const shown = answerMessage(model);
  scrollDown();
  running = new AbortController();
  $("send").disabled = true;
  $("stop").disabled = false;
  const begun = performance.now();
  const read = await stream(model, running.signal, shown);
  const ended = performance.now();
  running = null;
  $("send").disabled = false;
  $("stop").disabled = true;
  if (read.text) messages.push({role: "assistant", content: read.text});
  else messages.pop(); // nothing came back: the question may be asked again
  const streamed = read.first === null ? 0 : (ended - read.first) / 1000;
  shown.stats.textContent = statsLine(read.usage, read.extra, (ended - begun) / 1000, streamed);
  if (read.error) shown.node.append(el("div", {class: "error"}, read.error));
  shown.node.dataset.state = read.error === "stopped" ? "stopped" : read.error ? "error" : "done";
  scrollDown();
}

// --- the history -------------------------------------------------------------------------------

export async function loadSessions() {
  const q = $("sessions-filter").value.trim();
  const list = $("sessions");
  try {
    const body = await json(`/api/history?limit=50${q ? "&q=" + encodeURIComponent(q) : ""}`);
    list.replaceChildren();
    for (const c of body.conversations || []) {
      list.append(el("li", {}, el("button", {type: "button", title: c.preview || "", onclick: () => openSession(c.id)},
        el("span", {class: "name"}, c.name || c.preview || `#${c.id}`),
        el("span", {class: "note"}, `${c.model || ""} · ${c.turns} turn(s) · ${(c.updated || "").slice(0, 16).replace("T", " ")}`))));
    }
    if (!list.children.length) list.append(el("li", {class: "note"}, q ? "nothing found" : "no conversations yet"));
  } catch (error) {
    list.replaceChildren(el("li", {class: "note"}, `history: ${error.message}`));
  }
}

async function openSession(id) {
  if (running) return;
  let conversation;
  try {
    conversation = await json(`/api/history/${encodeURIComponent(id)}`);
  } catch (error) {
    status(`history: ${error.message}`);
    return;
  }
  const turns = conversation.turns || [];
  $("messages").replaceChildren();
  for (const turn of turns) {
    userMessage(turn.prompt || "");
    const shown = answerMessage(turn.model || "");
    renderInto(shown.content, turn.answer || "");
    shown.stats.textContent = statsLine(
      {prompt_tokens: turn.prompt_tokens, completion_tokens: turn.completion_tokens}, {cost: turn.cost}, null, 0);
    shown.node.dataset.state = "done";
  }
  const last = turns[turns.length - 1];
  // the conversation as it was sent, its system message first: the server then logs the next
  // turns into it
  const system = conversation.system ? [{role: "system", content: conversation.system}] : [];
  messages = Array.isArray(conversation.messages) ? [...system, ...conversation.messages]
    : last ? [...last.messages, {role: "assistant", content: last.answer}] : [];
  continuing = conversation.id;
  if (last && models.some((m) => m.id === last.model)) {
    $("model-select").value = last.model;
    showModel();
  }
  status(`continuing "${conversation.name || "#" + id}"`);
  scrollDown();
}

function newChat() {
  if (running) running.abort();
  messages = [];
  continuing = null;
  $("messages").replaceChildren();
  status("");
}

export function setUp() {
  $("model-select").addEventListener("change", showModel);
  $("ask").addEventListener("submit", (event) => {
    event.preventDefault();
    const question = $("prompt").value;
    if (running || !question.trim()) return;
    $("prompt").value = "";
    ask(question);
  });
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("ask").requestSubmit();
    }
  });
  $("stop").addEventListener("click", () => running && running.abort());
  $("new-chat").addEventListener("click", newChat);
  let typing = 0;
  $("sessions-filter").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(loadSessions, 250);
  });
}
