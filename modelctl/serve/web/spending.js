// The Spending view: cost or tokens by day and by model from /api/usage, drawn as inline SVG bar
// charts, and each key's budgets with what remains.
import { json } from "./api.js";
import { $, fillTable, svg } from "./dom.js";
import { count, usd } from "./format.js";

const WIDTH = 720;
const DAYS_HEIGHT = 180;
const ROW = 22; // one model's bar
const LABEL = 180; // room for a model's name left of its bar
let chosen = null; // the metric the user picked; until then cost where there is any, else tokens

const tokens = (row) => (row.prompt_tokens || 0) + (row.completion_tokens || 0);
const measure = (metric) => metric === "cost" ? (row) => row.cost || 0 : tokens;
const say = (metric, value) => metric === "cost" ? usd(value) : count(value) + " tokens";

function chartDays(days, metric) {
  const chart = $("chart-days");
  const value = measure(metric);
  const top = Math.max(...days.map(value), 0) || 1;
  const slot = WIDTH / Math.max(days.length, 1);
  const plot = DAYS_HEIGHT - 20;
  chart.setAttribute("viewBox", `0 0 ${WIDTH} ${DAYS_HEIGHT}`);
  chart.replaceChildren(svg("line", {x1: 0, y1: plot, x2: WIDTH, y2: plot, class: "axis"}));
  days.forEach((day, i) => {
    const h = (value(day) / top) * (plot - 10);
    chart.append(svg("rect", {class: "bar", x: (i * slot + slot * 0.1).toFixed(1), y: (plot - h).toFixed(1),
      width: (slot * 0.8).toFixed(1), height: h.toFixed(1), "data-date": day.date},
    svg("title", {}, `${day.date}: ${say(metric, value(day))}, ${day.turns} turn(s)`)));
  });
  const every = Math.ceil(days.length / 8);
  days.forEach((day, i) => {
    if (i % every === 0) chart.append(svg("text", {x: (i * slot + slot / 2).toFixed(1), y: DAYS_HEIGHT - 4, class: "tick"}, day.date.slice(5)));
  });
  chart.append(svg("text", {x: 4, y: 12, class: "tick top"}, say(metric, top)));
}

function chartModels(models, metric) {
  const chart = $("chart-models");
  const value = measure(metric);
  const rows = models.slice().sort((a, b) => value(b) - value(a));
  const top = Math.max(...rows.map(value), 0) || 1;
  const height = Math.max(rows.length, 1) * ROW;
  chart.setAttribute("viewBox", `0 0 ${WIDTH} ${height}`);
  chart.replaceChildren();
  if (!rows.length) chart.append(svg("text", {x: 4, y: 16, class: "tick"}, "no turns in this period"));
  rows.forEach((row, i) => {
    const w = (value(row) / top) * (WIDTH - LABEL - 90);
    const y = i * ROW;
    chart.append(
      svg("text", {x: LABEL - 6, y: y + 15, class: "label"}, row.model),
      svg("rect", {class: "bar", x: LABEL, y: y + 4, width: w.toFixed(1), height: ROW - 8, "data-model": row.model},
        svg("title", {}, `${row.model}: ${say(metric, value(row))}, ${row.turns} turn(s)`)),
      svg("text", {x: (LABEL + w + 6).toFixed(1), y: y + 15, class: "tick"}, say(metric, value(row))));
  });
}

function budgets(rows) {
  const money = (v) => v === null || v === undefined ? "—" : usd(v);
  fillTable($("budgets"), rows.map((b) => [
    b.label, money(b.spent_day), money(b.budget_day), money(b.left_day),
    money(b.spent_month), money(b.budget_month), money(b.left_month),
  ]), "no key has a budget");
}

export async function load() {
  const days = $("spending-days").value;
  try {
    const usage = await json(`/api/usage?days=${encodeURIComponent(days)}`);
    const total = usage.total || {};
    const metric = chosen || (total.cost ? "cost" : "tokens");
    $("spending-metric").value = metric;
    chartDays(usage.days || [], metric);
    chartModels(usage.models || [], metric);
    budgets(usage.budgets || []);
    $("spending-total").textContent =
      `${total.turns || 0} turn(s) · ${count(tokens(total))} tokens · ${total.cost === null ? "cost unknown" : usd(total.cost || 0)}`;
  } catch (error) {
    $("spending-total").textContent = `usage: ${error.message}`;
  }
}

export function setUp() {
  $("spending-days").addEventListener("change", load);
  $("spending-metric").addEventListener("change", () => {
    chosen = $("spending-metric").value;
    load();
  });
}
