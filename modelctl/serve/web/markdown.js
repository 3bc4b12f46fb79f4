// A small Markdown renderer: paragraphs, headings, emphasis, inline code, fenced code, lists,
// block quotes, tables and http(s) links. It builds DOM nodes with createElement and text nodes
// only, so whatever the text holds (HTML, scripts, `javascript:` links) stays text.
// MarkdownView renders a streamed answer incrementally: finished blocks are turned into DOM once,
// only the block still growing is rendered again, at most once per animation frame.
import { el } from "./dom.js";

const MAX_DEPTH = 8; // nesting of quotes, lists and emphasis; deeper is text
const BUDGET = 64 * 1024; // characters of finished blocks turned into DOM per frame
const TAIL_MAX = 32 * 1024; // a growing block longer than this is cut at a line end

const BLANK = /^[ \t]*$/;
const FENCE = /^ {0,3}(`{3,}|~{3,})[ \t]*([^\s`]*)[^`]*$/;
const FENCE_MARK = /^[ \t>]*(`{3,}|~{3,})/;
const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const ITEM = /^( {0,3})([-*+]|\d{1,9}[.)])(?:([ \t]+)(.*))?$/;
const TABLE_SEP = /^ {0,3}\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$/;
const CONTINUES = /^(?:[ \t]|[-*+][ \t]|\d{1,9}[.)][ \t])/; // a list going on after a blank line
const PUNCTUATION = /[!-/:-@[-`{-~]/;
const WORD = /[\p{L}\p{N}]/u;
const AUTOLINK = /<(https?:\/\/[^\s<>]+)>/y;
const BARE_URL = /https?:\/\/[^\s<>]*[^\s<>.,;:!?'")\]]/y;

/** The URL itself if it is an absolute http(s) URL, else null: nothing else becomes a link. */
export function safeUrl(text) {
  try {
    const url = new URL(text);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

const link = (href, label) => el("a", {href, rel: "noopener noreferrer", target: "_blank"}, label);

// --- blocks ------------------------------------------------------------------------------------

function startsBlock(line) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || ITEM.test(line);
}

/** The nodes of Markdown source `lines`. */
export function blocks(lines, depth = 0) {
  const out = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    let m;
    if (BLANK.test(line)) i++;
    else if ((m = FENCE.exec(line))) i = fence(lines, i, m, out);
    else if ((m = HEADING.exec(line))) {
      out.push(el("h" + m[1].length, {}, inline(m[2] || "", depth)));
      i++;
    } else if (RULE.test(line)) {
      out.push(el("hr"));
      i++;
    } else if (depth < MAX_DEPTH && QUOTE.test(line)) i = quote(lines, i, out, depth);
    else if (depth < MAX_DEPTH && ITEM.test(line)) i = list(lines, i, out, depth);
    else if (isTable(lines, i)) i = table(lines, i, out, depth);
    else i = paragraph(lines, i, out, depth);
  }
  return out;
}

function fence(lines, i, m, out) {
  const mark = m[1];
  const body = [];
  let j = i + 1;
  for (; j < lines.length; j++) {
    const close = lines[j].trim();
    if (close.length >= mark.length && close === mark[0].repeat(close.length)) break;
    body.push(lines[j]);
  }
  const lang = /^[\w+#.-]{1,32}$/.test(m[2]) ? m[2] : null;
  out.push(el("pre", {}, el("code", {"data-lang": lang}, body.join("\n"))));
  return j + 1;
}

function quote(lines, i, out, depth) {
  const inner = [];
  let m;
  for (; i < lines.length && (m = QUOTE.exec(lines[i])); i++) inner.push(m[1]);
  out.push(el("blockquote", {}, blocks(inner, depth + 1)));
  return i;
}

const untab = (line) => line.replace(/^[ \t]+/, (ws) => ws.replace(/\t/g, "    "));
const indent = (line) => /^ */.exec(line)[0].length;

/** Whether two list markers belong to one list: both bullets of one kind, or both numbers with one delimiter. */
const sameList = (a, b) => (/\d/.test(a) ? a.slice(-1) : a) === (/\d/.test(b) ? b.slice(-1) : b);

function list(lines, i, out, depth) {
  const first = ITEM.exec(lines[i]);
  const ordered = /\d/.test(first[2]);
  const items = [];
  let loose = false;
  for (let m = first; m && sameList(m[2], first[2]); m = i < lines.length ? ITEM.exec(lines[i]) : null) {
    const pad = !m[3] ? 1 : m[3].length > 4 ? 1 : m[3].length;
    const width = m[1].length + m[2].length + pad;
    const body = [m[3] ? m[3].slice(pad) + m[4] : ""];
    for (i++; i < lines.length; i++) {
      const line = untab(lines[i]);
      if (BLANK.test(line)) {
        let k = i;
        while (k < lines.length && BLANK.test(lines[k])) k++;
        if (k === lines.length || indent(untab(lines[k])) < width) break;
        loose = true;
        body.push("");
      } else if (indent(line) >= width) body.push(line.slice(width));
      else if (startsBlock(line)) break;
      else body.push(line); // a paragraph's lazy next line
    }
    items.push(blocks(body, depth + 1));
    let k = i;
    while (k < lines.length && BLANK.test(lines[k])) k++;
    const next = k < lines.length ? ITEM.exec(lines[k]) : null;
    if (k > i && next && sameList(next[2], first[2])) {
      loose = true;
      i = k;
    }
  }
  const start = ordered ? parseInt(first[2], 10) : 1;
  const node = el(ordered ? "ol" : "ul", {start: start !== 1 ? start : null});
  for (const nodes of items) {
    const li = el("li");
    for (const n of nodes) {
      if (!loose && n.tagName === "P") li.append(...n.childNodes);
      else li.append(n);
    }
    node.append(li);
  }
  out.push(node);
  return i;
}

function isTable(lines, i) {
  return i + 1 < lines.length && lines[i].includes("|") && lines[i + 1].includes("|") && TABLE_SEP.test(lines[i + 1]);
}

function cells(line) {
  let row = line.trim();
  if (row.startsWith("|")) row = row.slice(1);
  if (row.endsWith("|") && !row.endsWith("\\|")) row = row.slice(0, -1);
  return row.split(/(?<!\\)\|/).map((cell) => cell.trim());
}

function table(lines, i, out, depth) {
  const head = cells(lines[i]);
  const align = cells(lines[i + 1]).map((c) => c.endsWith(":") ? (c.startsWith(":") ? "center" : "right") : null);
  const row = (texts, tag) => el("tr", {}, head.map((_, c) =>
    el(tag, {class: align[c] ? "align-" + align[c] : null}, inline(texts[c] || "", depth))));
  const body = el("tbody");
  for (i += 2; i < lines.length && !BLANK.test(lines[i]) && lines[i].includes("|"); i++) body.append(row(cells(lines[i]), "td"));
  out.push(el("table", {}, el("thead", {}, row(head, "th")), body));
  return i;
}

function paragraph(lines, i, out, depth) {
  const start = i;
  for (i++; i < lines.length && !BLANK.test(lines[i]) && !startsBlock(lines[i]); i++);
  out.push(el("p", {}, inline(lines.slice(start, i).join("\n"), depth)));
  return i;
}

// --- inline ------------------------------------------------------------------------------------

/** indexOf that remembers its last answer per token: scanning left to right, each token's
 * occurrences are looked for once, so unclosed delimiters cost no quadratic time. */
class Finder {
  constructor(text) {
    this.text = text;
    this.memo = new Map();
  }

  find(token, from) {
    const hit = this.memo.get(token);
    if (hit && hit[0] <= from && (hit[1] === -1 || hit[1] >= from)) return hit[1];
    const at = this.text.indexOf(token, from);
    this.memo.set(token, [from, at]);
    return at;
  }
}

const runOf = (text, i, ch) => {
  let j = i;
  while (text[j] === ch) j++;
  return j - i;
};

/** The nodes of one block's inline Markdown. */
export function inline(text, depth = 0, inLink = false) {
  const nodes = [];
  const special = /[\\`*_~[<h]/g;
  const find = new Finder(text);
  let plain = "";
  let i = 0;
  while (i < text.length) {
    special.lastIndex = i;
    const m = special.exec(text);
    if (!m) {
      plain += text.slice(i);
      break;
    }
    plain += text.slice(i, m.index);
    i = m.index;
    const [made, end] = span(text, i, find, depth, inLink);
    if (typeof made === "string") plain += made;
    else {
      if (plain) nodes.push(plain);
      plain = "";
      nodes.push(made);
    }
    i = end;
  }
  if (plain) nodes.push(plain);
  return nodes;
}

/** What starts at text[i] (a node, or text) and where it ends. */
function span(text, i, find, depth, inLink) {
  const ch = text[i];
  if (ch === "\\") return PUNCTUATION.test(text[i + 1] || "") ? [text[i + 1], i + 2] : ["\\", i + 1];
  if (ch === "`") return code(text, i, find);
  if (ch === "*" || ch === "_" || ch === "~") return emphasis(text, i, find, depth, inLink);
  if (ch === "[" && !inLink) return bracket(text, i, find, depth);
  if (ch === "<" && !inLink) {
    AUTOLINK.lastIndex = i;
    const m = AUTOLINK.exec(text);
    const href = m && safeUrl(m[1]);
    return href ? [link(href, m[1]), i + m[0].length] : ["<", i + 1];
  }
  if (ch === "h" && !inLink && !WORD.test(text[i - 1] || "")) {
    BARE_URL.lastIndex = i;
    const m = BARE_URL.exec(text);
    const href = m && safeUrl(m[0]);
    if (href) return [link(href, m[0]), i + m[0].length];
  }
  return [ch, i + 1];
}

function code(text, i, find) {
  const n = runOf(text, i, "`");
  const fence = "`".repeat(n);
  const close = find.find(fence, i + n);
  if (close < 0) return [fence, i + n];
  let body = text.slice(i + n, close).replace(/\n/g, " ");
  if (body.length > 2 && body.startsWith(" ") && body.endsWith(" ")) body = body.slice(1, -1);
  return [el("code", {}, body), close + n];
}

function emphasis(text, i, find, depth, inLink) {
  const ch = text[i];
  const n = runOf(text, i, ch);
  const literal = [ch.repeat(n), i + n];
  if (n > 3 || (ch === "~" && n !== 2) || depth >= MAX_DEPTH) return literal;
  if (/\s/.test(text[i + n] || " ") || (ch === "_" && WORD.test(text[i - 1] || ""))) return literal;
  const mark = ch.repeat(n);
  const close = find.find(mark, i + n);
  if (close < 0 || /\s/.test(text[close - 1]) || (ch === "_" && WORD.test(text[close + n] || ""))) return literal;
  const inner = inline(text.slice(i + n, close), depth + 1, inLink);
  const node = ch === "~" ? el("del", {}, inner)
    : n === 1 ? el("em", {}, inner)
      : n === 2 ? el("strong", {}, inner)
        : el("strong", {}, el("em", {}, inner));
  return [node, close + n];
}

function bracket(text, i, find, depth) {
  const close = find.find("]", i + 1);
  if (close < 0 || text[close + 1] !== "(") return ["[", i + 1];
  const end = find.find(")", close + 2);
  if (end < 0) return ["[", i + 1];
  const target = text.slice(close + 2, end).trim().split(/\s+/)[0].replace(/^<(.*)>$/, "$1");
  const href = safeUrl(target);
  if (!href) return [text.slice(i, end + 1), end + 1]; // not http(s): the source, as text
  return [link(href, inline(text.slice(i + 1, close), depth + 1, true)), end + 1];
}

// --- streaming -----------------------------------------------------------------------------------

export class MarkdownView {
  constructor(root) {
    this.root = root;
    this.text = "";
    this.done = 0; // text before this is DOM already
    this.reopen = ""; // a code fence cut in its middle goes on in the next block
    this.scanned = 0; // lines before this were looked at for block ends
    this.cuts = []; // block ends not rendered yet: {at, reopen}
    this.lastCut = 0;
    this.fence = null; // the open fence's marker and line, while scanning inside one
    this.pending = null; // a blank line's end: a cut unless a list goes on after it
    this.tail = []; // the nodes of the block still growing
    this.final = false;
    this.frame = 0;
    this.drawn = null; // resolves once everything is rendered after end()
  }

  /** The whole text so far; rendered at the next animation frame. */
  set(text) {
    this.text = text;
    this.schedule();
  }

  /** The text is complete; the promise resolves when it is all rendered. */
  end() {
    this.final = true;
    this.schedule();
    return new Promise((resolve) => { this.drawn = resolve; });
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  cut(at, reopen) {
    if (at <= this.lastCut) return;
    this.cuts.push({at, reopen});
    this.lastCut = at;
  }

  /** Look at the lines that arrived whole since the last time, for where blocks end. */
  scan() {
    const text = this.text;
    for (let nl = text.indexOf("\n", this.scanned); nl >= 0; nl = text.indexOf("\n", this.scanned)) {
      const line = text.slice(this.scanned, nl);
      const end = this.scanned = nl + 1;
      const blank = BLANK.test(line);
      if (this.pending !== null && !blank) {
        if (!CONTINUES.test(line)) this.cut(this.pending, "");
        this.pending = null;
      }
      const mark = FENCE_MARK.exec(line);
      if (this.fence) {
        if (mark && mark[1][0] === this.fence.mark[0] && mark[1].length >= this.fence.mark.length) this.fence = null;
      } else if (mark) this.fence = {mark: mark[1], line};
      else if (blank) this.pending = end;
      if (end - this.lastCut > TAIL_MAX) this.cut(end, this.fence ? this.fence.line + "\n" : "");
    }
    if (this.final) this.cut(text.length, "");
  }

  render() {
    this.scan();
    for (const n of this.tail) n.remove();
    this.tail = [];
    for (let size = 0; this.cuts.length && (size === 0 || this.cuts[0].at - this.done <= BUDGET - size);) {
      const cut = this.cuts.shift();
      size += cut.at - this.done;
      this.append(blocks((this.reopen + this.text.slice(this.done, cut.at)).split("\n")));
      this.done = cut.at;
      this.reopen = cut.reopen;
    }
    if (this.cuts.length) return this.schedule(); // behind: the growing block waits
    const rest = this.reopen + this.text.slice(this.done);
    // while streaming, a long block is shown as text (parsed once it ends)
    this.tail = rest.length > TAIL_MAX ? [el("p", {}, rest)] : blocks(rest.split("\n"));
    this.append(this.tail);
    if (this.final && this.drawn) this.drawn();
  }

  append(nodes) {
    const fragment = document.createDocumentFragment();
    for (const n of nodes) fragment.append(n);
    this.root.append(fragment);
  }
}

/** Markdown rendered into `root` at once (a conversation loaded from the history). */
export function renderInto(root, text) {
  for (const n of blocks(text.split("\n"))) root.append(n);
}
