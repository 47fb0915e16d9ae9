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

export function renderRows(table, loss, result) {
  table.replaceChildren();
  const b = result.breakdown || {};
  if (loss === "cross_entropy") {
    row(table, ["row", "logsumexp", "target logit", "loss = logsumexp − target logit"], true);
    (b.loss || []).forEach((l, r) => row(table, [`row ${r}`, num(b.logsumexp[r]), num(b.target_logit[r]), num(l)]));
  } else {
    row(table, ["row", "column", "log x", "log(1 − x)", "loss"], true);
    (b.loss || []).forEach((ls, r) => ls.forEach((l, c) =>
      row(table, [`row ${r}`, String(c), num(b.log_input[r][c]), num(b.log_one_minus_input[r][c]), num(l)])));
  }
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

export function renderConventions(table, answer) {
  table.replaceChildren();
  row(table, ["id", "library", "call", "reads input as", "value", "agrees with torch", "why"], true);
  for (const c of answer.conventions) {
    if (c.error) {
      const tr = row(table, [c.id, c.library, { text: "", className: "call" }, "–", "refused", "–", { text: c.error, className: "why" }]);
      tr.cells[2].appendChild(code(c.call));
      tr.className = "refused";
    } else {
      const tr = row(table, [c.id, c.library, { text: "", className: "call" }, c.reads_input_as, num(c.value),
        { text: c.agrees_with_torch ? "yes" : "no", className: c.agrees_with_torch ? "agree" : "disagree" },
        { text: c.why, className: "why" }]);
      tr.cells[2].appendChild(code(c.call));
    }
    table.tBodies[0].lastElementChild.dataset.id = c.id;
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
