// "My number is different": the answer of POST /v1/diagnose/{name} for the request on the page
// plus the number the user typed. The matches come first, each with its explanation and its fix;
// when none, the service's own sentence says that nothing explains the number; every candidate
// the service computed follows in a table of its own. Numbers are formatted here, never computed.

import { fmt, sci } from "./tables.js";

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Six significant digits: enough to compare with a number typed from another library. */
export function shown(value) {
  return typeof value === "number" ? String(Number(value.toPrecision(6))) : fmt(value);
}

/** What the user typed, as the service should read it: a number where it is one, else the
 * text itself, so that the service names what is wrong with it (field 'observed'). */
export function observedOf(text) {
  const trimmed = text.trim();
  const number = Number(trimmed);
  return trimmed !== "" && Number.isFinite(number) ? number : trimmed;
}

export function renderDiagnosis(root, answer) {
  root.replaceChildren();
  root.append(el("p", { id: "diagnosis-summary" },
    `You got ${shown(answer.observed)}; torch gives ${shown(answer.torch)} for this request.`));
  if (answer.matches.length) {
    const n = answer.matches.length;
    root.append(el("p", { class: "verdict" }, n === 1 ? "One explanation gives your number:" : `${n} explanations give your number (the likeliest first):`));
    const list = el("ol", { id: "matches" });
    for (const m of answer.matches) {
      const li = el("li", { "data-id": m.id, "data-kind": m.kind });
      const head = el("p", { class: "match-head" });
      head.append(el("strong", {}, m.id), ` (${m.kind}) gives ${shown(m.value)}`,
        el("span", { class: "muted" }, `, relative difference ${sci(m.relative_difference)}`));
      const fix = el("p", { class: "fix" });
      fix.append(el("strong", {}, "Fix: "), m.fix);
      li.append(head, el("p", { class: "explanation" }, m.explanation), fix);
      list.appendChild(li);
    }
    root.appendChild(list);
  } else {
    root.append(el("ol", { id: "matches" }), el("p", { id: "no-match", class: "verdict" }, answer.message));
  }
  if (!answer.candidates.length) return;
  const details = el("details", { id: "candidates" });
  details.appendChild(el("summary", {}, `Every candidate the service computed (${answer.candidates.length})`));
  const box = el("div", { class: "scroll" });
  const table = el("table");
  const head = table.createTHead().insertRow();
  for (const h of ["id", "kind", "value", "relative difference", "explanation"]) head.appendChild(el("th", {}, h));
  const body = table.createTBody();
  for (const c of answer.candidates) {
    const tr = body.insertRow();
    tr.dataset.id = c.id;
    tr.append(el("td", {}, c.id), el("td", {}, c.kind), el("td", { class: "num", title: String(c.value) }, shown(c.value)),
      el("td", { class: "num" }, sci(c.relative_difference)), el("td", { class: "why" }, c.explanation));
  }
  box.appendChild(table);
  details.appendChild(box);
  root.appendChild(details);
}

export function renderDiagnosisProblem(root, text) {
  root.replaceChildren(el("p", { class: "problem", id: "diagnosis-problem" }, text));
}
