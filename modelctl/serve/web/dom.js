// DOM helpers. Every text reaches the page through textContent or a text node: nothing the
// server, a model or a user wrote is ever parsed as HTML.

const SVG = "http://www.w3.org/2000/svg";

function build(node, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = String(value);
    else if (typeof value === "function") node.addEventListener(name.replace(/^on/, ""), value);
    else node.setAttribute(name, String(value));
  }
  for (const child of children) add(node, child);
  return node;
}

// Children: nodes, text (a text node, never markup), arrays of them; null and false are nothing.
function add(node, child) {
  if (child === null || child === undefined || child === false) return;
  if (Array.isArray(child)) for (const c of child) add(node, c);
  else node.append(child instanceof Node ? child : String(child));
}

/** An HTML element: el("td", {class: "num"}, "12"). */
export const el = (tag, attrs, ...children) => build(document.createElement(tag), attrs, children);

/** An SVG element. */
export const svg = (tag, attrs, ...children) => build(document.createElementNS(SVG, tag), attrs, children);

export const $ = (id) => document.getElementById(id);

/** A table's body rows replaced by `rows` (arrays of cell contents), or one row saying `empty`. */
export function fillTable(table, rows, empty) {
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const cells of rows) body.append(el("tr", {}, cells.map((c) => el("td", {}, c))));
  if (!rows.length) body.append(el("tr", {}, el("td", {colspan: table.tHead.rows[0].cells.length, class: "note"}, empty)));
}

export function status(text) {
  $("status").textContent = text || "";
}
