// The explainer: state, the two API calls per edit, and what is shown of their answers.

import { Problem, Unauthorized, apiKey, curlCommand, getJSON, postJSON, setApiKey } from "./api.js";
import { renderChart } from "./chart.js";
import { renderGrid } from "./grid.js";
import { fmt, renderConventions, renderPrecision, renderRows, renderWarnings } from "./tables.js";

const $ = (id) => document.getElementById(id);

const state = {
  loss: "cross_entropy",
  dtype: "float64",
  input: [[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]],
  target: [0, 1],
};
let pending = null;
let generation = 0;

function requestBody() {
  const body = { input: state.input, target: state.target, dtype: state.dtype };
  body.include = state.loss === "cross_entropy" ? ["softmax", "precision"] : ["precision"];
  return body;
}

function conventionsBody() {
  return { input: state.input, target: state.target };
}

function showProblem(text) {
  const p = $("problem");
  p.hidden = !text;
  p.textContent = text || "";
}

async function compute() {
  const mine = ++generation;
  const path = `v1/losses/${state.loss}`;
  const body = requestBody();
  $("curl").textContent = curlCommand(path, body);
  try {
    const [result, conventions] = await Promise.all([
      postJSON(path, body),
      postJSON(`v1/conventions/${state.loss}`, conventionsBody()),
    ]);
    if (mine !== generation) return; // a later edit is on its way
    $("key-form").hidden = true;
    showProblem("");
    show(result, conventions);
  } catch (err) {
    if (mine !== generation) return;
    if (err instanceof Unauthorized) {
      $("key-form").hidden = false;
      showProblem(apiKey() ? "That API key was refused; enter another." : "This service needs an API key.");
      return;
    }
    if (err instanceof Problem) {
      const field = err.problem.field ? ` (field '${err.problem.field}')` : "";
      showProblem(`${err.message}${field}`);
      return;
    }
    showProblem(`The service could not be reached: ${err.message}`);
  }
}

function show(result, conventions) {
  $("torch-value").textContent = fmt(result.value);
  $("torch-value").title = String(result.value);
  const ref = result.reference;
  $("reference-value").textContent = ref ? fmt(ref.value) : "–";
  $("reference-value").title = ref ? String(ref.value) : "";
  const agreement = $("agreement");
  agreement.textContent = ref ? (ref.agrees ? "agree" : "disagree") : "–";
  agreement.className = `big ${ref && ref.agrees ? "agree" : "disagree"}`;
  if (ref) agreement.title = `max relative difference ${ref.max_rel_diff}`;
  renderWarnings($("warnings"), result.warnings);
  renderRows($("rows"), state.loss, result);
  if (state.loss === "cross_entropy") {
    $("chart-title").textContent = "Softmax probabilities per row (target marked)";
    renderChart($("chart"), result.extras.softmax, (r, c) => state.target[r] === c);
  } else {
    $("chart-title").textContent = "Input probabilities per row (targets 1 marked)";
    renderChart($("chart"), state.input, (r, c) => state.target[r][c] === 1);
  }
  renderConventions($("conventions"), conventions);
  renderPrecision($("precision"), result.extras.precision);
}

function schedule() {
  clearTimeout(pending);
  pending = setTimeout(compute, 250);
}

function edit(change) {
  change(state);
  schedule();
}

function redraw() {
  $("grid-title").textContent = state.loss === "cross_entropy"
    ? "Logits (rows × classes) and a target class per row"
    : "Probabilities (rows × columns) and a target per element";
  const unit = state.loss === "cross_entropy" ? "class" : "column";
  $("add-col").textContent = `+ ${unit}`;
  $("remove-col").textContent = `− ${unit}`;
  renderGrid($("grid"), state, edit);
  schedule();
}

async function loadExample(loss) {
  try {
    const described = await getJSON(`v1/losses/${loss}`);
    state.loss = loss;
    $("loss").value = loss;
    state.input = described.example.input;
    state.target = described.example.target;
    redraw();
  } catch (err) {
    if (err instanceof Unauthorized) {
      $("key-form").hidden = false;
      showProblem("This service needs an API key.");
    } else showProblem(err.message);
  }
}

function reshape(rows, cols) {
  const fill = state.loss === "cross_entropy" ? 0 : 0.5;
  state.input = Array.from({ length: rows }, (_, r) =>
    Array.from({ length: cols }, (_, c) => state.input[r]?.[c] ?? fill));
  if (state.loss === "cross_entropy") {
    state.target = Array.from({ length: rows }, (_, r) => Math.min(state.target[r] ?? 0, cols - 1));
  } else {
    state.target = Array.from({ length: rows }, (_, r) =>
      Array.from({ length: cols }, (_, c) => state.target[r]?.[c] ?? 1));
  }
  redraw();
}

function wire() {
  $("load-article").addEventListener("click", () => loadExample("cross_entropy"));
  $("loss").addEventListener("change", () => loadExample($("loss").value));
  $("dtype").addEventListener("change", () => { state.dtype = $("dtype").value; schedule(); });
  const rows = () => state.input.length, cols = () => state.input[0]?.length ?? 0;
  $("add-row").addEventListener("click", () => reshape(rows() + 1, cols()));
  $("remove-row").addEventListener("click", () => rows() > 1 && reshape(rows() - 1, cols()));
  $("add-col").addEventListener("click", () => reshape(rows(), cols() + 1));
  $("remove-col").addEventListener("click", () => cols() > 1 && reshape(rows(), cols() - 1));
  $("use-key").addEventListener("click", () => { setApiKey($("api-key").value.trim()); compute(); });
  $("copy-curl").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText($("curl").textContent);
      $("copied").textContent = "copied";
    } catch {
      const range = document.createRange();
      range.selectNodeContents($("curl"));
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      $("copied").textContent = "selected: press Ctrl+C";
    }
  });
}

wire();
redraw();
