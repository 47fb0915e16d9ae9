// The input editors: one per tensor the loss takes (GET /v1/losses/{name}: `inputs`), each a grid
// of number fields for a number, a vector or a matrix, and a JSON text field for any shape (the
// general fallback, and the only way to give an optional input the example leaves out).
// The values are the user's own: this module edits them and never computes a loss.

/** Whether a value can be edited as a grid: a number, or a non-empty rectangular array of
 * numbers of one or two dimensions. */
export function gridShape(value) {
  if (typeof value === "number") return [];
  if (!Array.isArray(value) || value.length === 0) return null;
  if (value.every((v) => typeof v === "number")) return [value.length];
  if (!value.every((row) => Array.isArray(row))) return null;
  const cols = value[0].length;
  if (cols === 0) return null;
  const rectangular = value.every((row) => row.length === cols && row.every((v) => typeof v === "number"));
  return rectangular ? [value.length, cols] : null;
}

/** JSON with one line per row of a matrix (or per matrix of a higher-rank tensor). */
export function formatJSON(value) {
  if (!Array.isArray(value) || !value.some(Array.isArray)) return JSON.stringify(value);
  return `[\n${value.map((v) => `  ${JSON.stringify(v)}`).join(",\n")}\n]`;
}

const copy = (v) => JSON.parse(JSON.stringify(v));

/** Resize the first input by one row or column, and with it the required inputs that share its
 * rows (same leading length) or, for columns, its whole shape. A new row or column is a copy of
 * the last, so that targets stay valid; the last one is never removed. Returns whether anything
 * changed. */
export function resize(values, inputs, axis, delta) {
  const first = inputs[0]?.name;
  const shape = gridShape(values[first]);
  if (!shape || shape.length === 0 || (axis === "col" && shape.length !== 2)) return false;
  const partners = inputs.slice(1).filter((i) => i.required && Array.isArray(values[i.name])).map((i) => i.name);
  const sameRows = (name) => values[name].length === shape[0];
  const sameShape = (name) => {
    const s = gridShape(values[name]);
    return s && s.length === 2 && s[0] === shape[0] && s[1] === shape[1];
  };
  const names = [first, ...partners.filter(axis === "row" ? sameRows : sameShape)];
  if (axis === "row") {
    if (delta < 0 && shape[0] <= 1) return false;
    for (const name of names) {
      const v = values[name];
      if (delta > 0) v.push(copy(v[v.length - 1]));
      else v.pop();
    }
  } else {
    if (delta < 0 && shape[1] <= 1) return false;
    for (const name of names) {
      for (const row of values[name]) {
        if (delta > 0) row.push(row[row.length - 1]);
        else row.pop();
      }
    }
  }
  return true;
}

/** The singular of what torch reads the first input as ("logits" → "logit"), a class of its
 * cells, so that a reader (or a test) can find the numbers torch reads as logits. */
export function readingClass(reading) {
  if (!reading) return "";
  const slug = reading.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
  return slug.endsWith("ies") ? `${slug.slice(0, -3)}y` : slug.replace(/s$/, "");
}

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "className") node.className = v;
    else node.setAttribute(k, v);
  }
  if (text !== undefined) node.textContent = text;
  return node;
}

const slug = (name) => name.replace(/[^A-Za-z0-9_-]/g, "_");

/**
 * Render one editor per input into `root`.
 * view: { inputs, values, modes, reading } (modes: name → "grid" | "json", filled here);
 * onEdit(name, value, error): a grid cell or a JSON field changed (value undefined: not sent;
 * error: the JSON field does not parse, nothing to send).
 */
export function renderEditors(root, view, onEdit) {
  root.replaceChildren();
  view.inputs.forEach((input, index) => {
    const value = view.values[input.name];
    if (!view.modes[input.name]) view.modes[input.name] = value !== undefined && gridShape(value) ? "grid" : "json";
    const box = el("div", { className: "editor", "data-editor": input.name });
    const head = el("div", { className: "editor-head" });
    head.append(el("strong", {}, input.name), el("span", { className: "muted" }, input.required ? "" : " optional"));
    const toggle = el("button", { type: "button", className: "mode", "data-input": input.name });
    head.appendChild(toggle);
    box.append(head, el("p", { className: "description" }, input.description));
    const body = el("div", { className: "scroll editor-body" });
    box.appendChild(body);
    const kind = index === 0 ? readingClass(view.reading) : "";
    let broken = false;
    const refresh = () => {
      const mode = view.modes[input.name];
      toggle.textContent = mode === "grid" ? "edit as JSON" : "edit as grid";
      toggle.disabled = mode === "json" && (broken || !gridShape(view.values[input.name]));
      toggle.title = toggle.disabled ? "only a number, a vector or a matrix of numbers has a grid" : "";
    };
    const edited = (name, value, error) => {
      broken = Boolean(error);
      onEdit(name, value, error);
      refresh();
    };
    const draw = () => {
      const current = view.values[input.name];
      body.replaceChildren(view.modes[input.name] === "grid"
        ? gridOf(input.name, current, kind, edited)
        : jsonField(input, current, edited));
      refresh();
    };
    toggle.addEventListener("click", () => {
      view.modes[input.name] = view.modes[input.name] === "grid" ? "json" : "grid";
      draw();
    });
    draw();
    root.appendChild(box);
  });
}

/** Add the reading's class to the first input's cells once the conventions say what it is. */
export function markReading(root, name, reading) {
  const kind = readingClass(reading);
  if (!kind) return;
  for (const cell of root.querySelectorAll(`input.cell[data-input="${slug(name)}"]`)) cell.classList.add(kind);
}

function gridOf(name, value, kind, onEdit) {
  const shape = gridShape(value);
  const table = el("table", { className: "grid" });
  const cell = (v, r, c, set) => {
    const input = el("input", {
      type: "number", step: "any", className: `cell ${slug(name)} ${kind}`.trim(),
      "data-input": slug(name), "data-row": String(r), "data-col": String(c),
      "aria-label": shape.length === 2 ? `${name}[${r}, ${c}]` : shape.length === 1 ? `${name}[${r}]` : name,
    });
    input.value = String(v);
    input.addEventListener("input", () => set(input.valueAsNumber));
    return input;
  };
  const body = table.createTBody();
  if (shape.length === 0) {
    body.insertRow().insertCell().appendChild(cell(value, 0, 0, (x) => onEdit(name, x)));
    return table;
  }
  if (shape.length === 2) {
    const head = table.createTHead().insertRow();
    head.appendChild(el("th", {}, ""));
    for (let c = 0; c < shape[1]; c++) head.appendChild(el("th", {}, `col ${c}`));
  } else {
    table.createTHead().insertRow().append(el("th", {}, ""), el("th", {}, name));
  }
  value.forEach((row, r) => {
    const tr = body.insertRow();
    tr.appendChild(el("th", {}, `row ${r}`));
    if (shape.length === 1) tr.insertCell().appendChild(cell(row, r, 0, (x) => { value[r] = x; onEdit(name, value); }));
    else row.forEach((v, c) => tr.insertCell().appendChild(cell(v, r, c, (x) => { value[r][c] = x; onEdit(name, value); })));
  });
  return table;
}

function jsonField(input, value, onEdit) {
  const wrap = el("div", { className: "json" });
  const text = formatJSON(value);
  const area = el("textarea", {
    className: "json-input", "data-input": slug(input.name), spellcheck: "false",
    rows: String(Math.min(12, Math.max(2, (text || "").split("\n").length))),
    "aria-label": `${input.name} as JSON`,
    placeholder: input.required ? "JSON" : "JSON (left out when empty)",
  });
  area.value = value === undefined ? "" : text;
  const error = el("p", { className: "json-error", role: "status" });
  area.addEventListener("input", () => {
    const raw = area.value.trim();
    if (!raw) {
      error.textContent = "";
      area.removeAttribute("aria-invalid");
      onEdit(input.name, undefined);
      return;
    }
    try {
      const parsed = JSON.parse(raw);
      error.textContent = "";
      area.removeAttribute("aria-invalid");
      onEdit(input.name, parsed);
    } catch (err) {
      error.textContent = `not JSON yet: ${err.message}`;
      area.setAttribute("aria-invalid", "true");
      onEdit(input.name, undefined, `'${input.name}' is not valid JSON`);
    }
  });
  wrap.append(area, error);
  return wrap;
}
