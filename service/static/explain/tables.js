// Tables filled from the API's answers; numbers are only formatted here, never computed.

export function fmt(value, digits = 4) {
  if (typeof value === "number") return value.toFixed(digits);
  if (value === null || value === undefined) return "–";
  return String(value); // "NaN", "Infinity", "-Infinity"
}

export function sci(value) {
  if (typeof value === "number") return value === 0 ? "0" : value.toExponential(2);
  return fmt(value);
}

function row(table, cells, header = false) {
  const tr = header ? table.createTHead().insertRow() : (table.tBodies[0] || table.createTBody()).insertRow();
  for (const cell of cells) {
    const td = document.createElement(header ? "th" : "td");
    if (cell instanceof Node) td.appendChild(cell);
    else if (cell && typeof cell === "object") {
      td.textContent = cell.text;
      if (cell.className) td.className = cell.className;
      if (cell.title) td.title = cell.title;
    } else td.textContent = cell;
    tr.appendChild(td);
  }
  return tr;
}

function num(value) {
  return { text: fmt(value), className: "num", title: String(value) };
}

function code(text) {
  const c = document.createElement("code");
  c.textContent = text;
  return c;
}

/** At most this many rows of the breakdown are shown: a request may hold thousands. */
export const MAX_TERMS = 200;

function shapeOf(value) {
  const shape = [];
  for (let v = value; Array.isArray(v); v = v[0]) shape.push(v.length);
  return shape;
}

const clip = (text, n = 240) => (text.length > n ? `${text.slice(0, n)}…` : text);

function term(value) {
  if (typeof value === "boolean") return { text: value ? "yes" : "no", className: "num" };
  if (Number.isInteger(value)) return { text: String(value), className: "num", title: String(value) };
  return num(value);
}

/**
 * The breakdown of POST /v1/losses/{name}: one table row per term of `loss` (per sample, or per
 * element for a pointwise loss), one column per breakdown entry of that shape, `loss` first
 * (what a phone shows before the table scrolls).
 * Entries of another shape (per class, say) are listed under the table.
 */
export function renderBreakdown(table, other, breakdown) {
  table.replaceChildren();
  other.hidden = true;
  const b = breakdown || {};
  const keys = Object.keys(b);
  if (!keys.length) {
    row(table, ["no breakdown for this request"], true);
    return;
  }
  const main = "loss" in b ? "loss" : keys[0];
  const shape = JSON.stringify(shapeOf(b[main]));
  const columns = [main, ...keys.filter((k) => k !== main && JSON.stringify(shapeOf(b[k])) === shape)];
  const rest = keys.filter((k) => !columns.includes(k));
  row(table, ["", ...columns], true);
  const flat = [];
  const walk = (node, index) => {
    if (flat.length >= MAX_TERMS) return;
    if (Array.isArray(node)) node.forEach((child, i) => walk(child, [...index, i]));
    else flat.push(index);
  };
  walk(b[main], []);
  const at = (value, index) => index.reduce((v, i) => v[i], value);
  const label = (index) => index.length === 0 ? "value" : index.length === 1 ? `row ${index[0]}` : `[${index.join(", ")}]`;
  for (const index of flat) {
    row(table, [{ text: label(index), className: "index" }, ...columns.map((k) => term(at(b[k], index)))]);
  }
  const total = shapeOf(b[main]).reduce((a, n) => a * n, 1);
  const notes = [];
  if (total > flat.length) notes.push(`The first ${flat.length} of ${total} terms.`);
  if (rest.length) notes.push(`Also in the breakdown: ${rest.map((k) => `${k} ${clip(JSON.stringify(b[k]))}`).join("; ")}.`);
  other.textContent = notes.join(" ");
  other.hidden = !notes.length;
}

export function renderWarnings(list, warnings) {
  list.replaceChildren();
  if (!warnings.length) {
    const li = document.createElement("li");
    li.textContent = "none";
    list.appendChild(li);
  }
  for (const w of warnings) {
    const li = document.createElement("li");
    li.dataset.code = w.code;
    const strong = document.createElement("strong");
    strong.textContent = `${w.code}: `;
    li.append(strong, w.message);
    list.appendChild(li);
  }
}

/** One row per convention: the value and the verdict next to the id (what a phone shows before
 * the table scrolls), then how the library reads the input, its call, and why. */
export function renderConventions(table, answer) {
  table.replaceChildren();
  row(table, ["id", "library", "value", "agrees with torch", "reads input as", "call", "why"], true);
  for (const c of answer.conventions) {
    const call = { text: "", className: "call" };
    const tr = c.error
      ? row(table, [c.id, c.library, "refused", "–", "–", call, { text: c.error, className: "why" }])
      : row(table, [c.id, c.library, num(c.value),
        { text: c.agrees_with_torch ? "yes" : "no", className: c.agrees_with_torch ? "agree" : "disagree" },
        c.reads_input_as ?? "–", call, { text: c.why ?? "", className: "why" }]);
    tr.cells[5].appendChild(code(c.call));
    if (c.error) tr.className = "refused";
    tr.dataset.id = c.id;
  }
}

export function renderPrecision(table, precision) {
  table.replaceChildren();
  row(table, ["dtype", "torch's value", "relative error", "from input rounding", "from arithmetic"], true);
  for (const [dtype, p] of Object.entries(precision || {})) {
    if (p.error) {
      row(table, [dtype, { text: p.error, className: "why" }, "–", "–", "–"]).className = "refused";
      continue;
    }
    const value = Array.isArray(p.value) ? JSON.stringify(p.value) : p.value;
    row(table, [dtype, { text: typeof value === "number" ? value.toPrecision(8) : String(value), className: "num" },
      { text: sci(p.relative_error), className: "num" }, { text: sci(p.input_rounding), className: "num" },
      { text: sci(p.arithmetic), className: "num" }]);
  }
}
