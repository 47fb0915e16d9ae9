// The editor: a grid of numbers (rows × classes) and the targets, as plain inputs.
// For cross_entropy one class index per row; for binary_cross_entropy a target per element.

export function renderGrid(root, state, onEdit) {
  root.replaceChildren();
  const table = document.createElement("table");
  const head = table.createTHead().insertRow();
  head.appendChild(th(""));
  const classes = state.input[0]?.length ?? 0;
  for (let c = 0; c < classes; c++) head.appendChild(th(state.loss === "cross_entropy" ? `class ${c}` : `x[·, ${c}]`));
  if (state.loss === "cross_entropy") head.appendChild(th("target"));
  const body = table.createTBody();
  state.input.forEach((row, r) => {
    const tr = body.insertRow();
    tr.appendChild(th(`row ${r}`));
    row.forEach((value, c) => {
      const input = numberInput(value, "logit", r, c);
      input.addEventListener("input", () => onEdit((s) => { s.input[r][c] = input.valueAsNumber; }));
      tr.insertCell().appendChild(input);
    });
    if (state.loss === "cross_entropy") {
      const target = numberInput(state.target[r], "target", r, 0);
      target.step = "1";
      target.min = "0";
      target.addEventListener("input", () => onEdit((s) => { s.target[r] = target.valueAsNumber; }));
      tr.insertCell().appendChild(target);
    }
  });
  if (state.loss === "binary_cross_entropy") {
    const sep = body.insertRow();
    sep.appendChild(th("targets"));
    state.target.forEach((row, r) => {
      const tr = body.insertRow();
      tr.appendChild(th(`row ${r}`));
      row.forEach((value, c) => {
        const input = numberInput(value, "target", r, c);
        input.addEventListener("input", () => onEdit((s) => { s.target[r][c] = input.valueAsNumber; }));
        tr.insertCell().appendChild(input);
      });
    });
  }
  root.appendChild(table);
}

function th(text) {
  const cell = document.createElement("th");
  cell.textContent = text;
  return cell;
}

function numberInput(value, kind, row, col) {
  const input = document.createElement("input");
  input.type = "number";
  input.step = "any";
  input.value = String(value);
  input.className = kind;
  input.dataset.row = String(row);
  input.dataset.col = String(col);
  input.setAttribute("aria-label", `${kind} row ${row} column ${col}`);
  return input;
}
