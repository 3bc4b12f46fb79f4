// The Models view: the registry as `modelctl list` filters it (/api/models), and the local models
// loaded now (/api/ps) with their Unload buttons (/api/stop).
import { json } from "./api.js";
import { $, el, fillTable, status } from "./dom.js";
import { bytes, count, seconds, usd } from "./format.js";

function query() {
  const params = new URLSearchParams();
  if ($("filter-local").checked) params.set("local", "1");
  if ($("filter-free").checked) params.set("free", "1");
  for (const [name, id] of [["provider", "filter-provider"], ["task", "filter-task"], ["q", "filter-q"]]) {
    const value = $(id).value.trim();
    if (value) params.set(name, value);
  }
  const text = params.toString();
  return text ? "?" + text : "";
}

async function loadRegistry() {
  const table = $("models-table");
  try {
    const rows = (await json("/api/models" + query())).models || [];
    fillTable(table, rows.map((m) => [
      m.id, m.provider || "", m.context_window ? count(m.context_window) : "",
      m.pricing ? usd(m.pricing.input) : "", m.pricing ? usd(m.pricing.output) : "",
      m.local ? "yes" : "", (m.tasks || []).join(", "), m.status || "",
    ]), "no model matches");
  } catch (error) {
    fillTable(table, [], `models: ${error.message}`);
  }
}

async function unload(model) {
  try {
    const body = await json("/api/stop", {model});
    status(`unloaded ${(body.stopped || []).join(", ")}`);
  } catch (error) {
    status(`unload ${model}: ${error.message}`);
  }
  loadLoaded();
}

async function loadLoaded() {
  const table = $("loaded-table");
  try {
    const rows = (await json("/api/ps")).models || [];
    fillTable(table, rows.map((r) => [
      r.model, bytes(r.size_bytes), r.loaded_s === null ? "loading" : seconds(r.loaded_s) + " ago",
      seconds(r.idle_s), r.busy ? "busy" : "", String(r.queue), String(r.requests),
      el("button", {type: "button", class: "unload", "data-model": r.model, onclick: () => unload(r.model)}, "Unload"),
    ]), "no local model is loaded");
  } catch (error) {
    fillTable(table, [], `loaded models: ${error.message}`);
  }
}

export function load() {
  return Promise.all([loadLoaded(), loadRegistry()]);
}

export function setUp() {
  $("model-filters").addEventListener("submit", (event) => {
    event.preventDefault();
    loadRegistry();
  });
  for (const id of ["filter-local", "filter-free"]) $(id).addEventListener("change", loadRegistry);
}
