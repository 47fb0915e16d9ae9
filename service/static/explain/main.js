// The explainer: its state, the API calls per edit, and what is shown of their answers.
//
// Built from what the service says, never from per-loss code here: the losses are those of
// GET /v1/conventions; each one's inputs, options and example come from GET /v1/losses/{name};
// each edit posts the same request to /v1/losses/{name} (value, reference, breakdown, warnings,
// precision), /v1/conventions/{name} (every library's reading) and, once the user has typed a
// number, /v1/diagnose/{name}.

import { Problem, Unauthorized, apiKey, curlCommand, getJSON, postJSON, setApiKey } from "./api.js";
import { renderChart } from "./chart.js";
import { observedOf, renderDiagnosis, renderDiagnosisProblem } from "./diagnose.js";
import { gridShape, markReading, renderEditors, resize } from "./grid.js";
import { renderParams } from "./params.js";
import { fmt, renderBreakdown, renderConventions, renderPrecision, renderWarnings } from "./tables.js";

const $ = (id) => document.getElementById(id);

/** The article's loss: the one the page opens on, and the article button's. */
const ARTICLE = "cross_entropy";
/** Extras that are probabilities of the input, charted when the loss offers one. */
const CHARTED_EXTRAS = ["softmax", "sigmoid"];

const state = {
  catalogue: new Map(), // name → GET /v1/conventions entry (module, reductions, rows, mistakes)
  booted: false,
  loss: null,
  description: null, // GET /v1/losses/{name}
  dtype: "float64",
  values: {}, // input name → the tensor as JSON; absent: not sent
  params: {}, // option name → value; absent: the service's default
  modes: {}, // input name → "grid" | "json"
  errors: {}, // input name → why it cannot be sent (a JSON field that does not parse)
  readings: new Map(), // loss → what its torch row reads the first input as
};
let pending = null;
let generation = 0;
let diagnosis = 0;
let loading = 0;

const inputNames = () => (state.description?.inputs || []).map((i) => i.name);

function requestArguments() {
  const body = {};
  for (const name of inputNames()) if (state.values[name] !== undefined) body[name] = state.values[name];
  return Object.assign(body, state.params);
}

function chartedExtra() {
  return CHARTED_EXTRAS.find((e) => (state.description?.extras || []).includes(e));
}

function lossBody() {
  const extra = chartedExtra();
  return { ...requestArguments(), dtype: state.dtype, include: extra ? [extra, "precision"] : ["precision"] };
}

function showProblem(text) {
  const p = $("problem");
  p.hidden = !text;
  p.textContent = text || "";
}

function problemText(err) {
  if (err instanceof Problem) {
    const field = err.problem.field ? ` (field '${err.problem.field}')` : "";
    return `${err.message}${field}`;
  }
  return `The service could not be reached: ${err.message}`;
}

/** A 401 shows the key form; anything else is said in the problem line. */
function refused(err) {
  if (err instanceof Unauthorized) {
    $("key-form").hidden = false;
    showProblem(apiKey() ? "That API key was refused; enter another." : "This service needs an API key.");
    return;
  }
  showProblem(problemText(err));
}

async function compute() {
  const mine = ++generation;
  if (!state.description) return;
  const broken = Object.values(state.errors);
  if (broken.length) {
    showProblem(`${broken.join("; ")}: fix it to see the numbers.`);
    return;
  }
  const path = `v1/losses/${state.loss}`;
  const body = lossBody();
  $("curl").textContent = curlCommand(path, body);
  if ($("observed").value.trim()) diagnose();
  try {
    const [result, conventions] = await Promise.all([
      postJSON(path, body),
      postJSON(`v1/conventions/${state.loss}`, requestArguments()),
    ]);
    if (mine !== generation) return; // a later edit is on its way
    $("key-form").hidden = true;
    showProblem("");
    show(result, conventions, body);
  } catch (err) {
    if (mine !== generation) return;
    refused(err);
  }
}

async function diagnose() {
  const mine = ++diagnosis;
  const root = $("diagnosis");
  const text = $("observed").value;
  if (!text.trim()) {
    root.replaceChildren();
    return;
  }
  if (!state.description) return;
  const request = lossBody();
  delete request.include; // the extras are not part of the question
  root.setAttribute("aria-busy", "true");
  try {
    const answer = await postJSON(`v1/diagnose/${state.loss}`, { ...request, observed: observedOf(text) });
    if (mine !== diagnosis) return;
    renderDiagnosis(root, answer);
  } catch (err) {
    if (mine !== diagnosis) return;
    if (err instanceof Unauthorized) refused(err);
    else renderDiagnosisProblem(root, problemText(err));
  } finally {
    if (mine === diagnosis) root.removeAttribute("aria-busy");
  }
}

function show(result, conventions, sent) {
  $("torch-value").textContent = fmt(result.value);
  $("torch-value").title = String(result.value);
  const ref = result.reference;
  $("reference-value").textContent = ref ? fmt(ref.value) : "–";
  $("reference-value").title = ref ? String(ref.value) : "";
  const agreement = $("agreement");
  agreement.textContent = ref ? (ref.agrees ? "agree" : "disagree") : "–";
  agreement.className = `big ${ref && ref.agrees ? "agree" : "disagree"}`;
  if (ref) agreement.title = `max relative difference ${ref.max_rel_diff}`;
  renderWarnings($("warnings"), result.warnings || []);
  renderBreakdown($("rows"), $("other-terms"), result.breakdown);
  const torchRow = conventions.conventions.find((c) => c.id === "torch");
  const reading = torchRow?.reads_input_as;
  if (reading) {
    state.readings.set(state.loss, reading);
    markReading($("grid"), inputNames()[0], reading);
  }
  showChart(result, sent, reading);
  renderConventions($("conventions"), conventions);
  renderPrecision($("precision"), result.extras?.precision);
}

/** Bars of probabilities, where the service has them: an extra it returned, or the input itself
 * where torch reads it as probabilities. Targets are marked where the request's `target` says
 * which bar is the right one (a class index per row, or 1 where the target is 1). */
function showChart(result, sent, reading) {
  const extra = chartedExtra();
  const first = inputNames()[0];
  let rows = extra ? result.extras?.[extra] : reading === "probabilities" ? sent[first] : null;
  const shape = gridShape(rows);
  const section = $("chart-section");
  if (!shape || shape.length === 0) {
    section.hidden = true;
    $("chart").replaceChildren();
    return;
  }
  section.hidden = false;
  const target = sent.target;
  if (shape.length === 1) rows = [rows];
  const matrix = shape.length === 1 ? [target] : target;
  let isTarget = () => false;
  let marked = "";
  const targetShape = gridShape(target);
  if (targetShape && targetShape.length === 1 && shape.length === 2 && target.length === rows.length) {
    isTarget = (r, c) => target[r] === c;
    marked = "target marked";
  } else if (targetShape && JSON.stringify(gridShape(matrix)) === JSON.stringify(gridShape(rows))) {
    isTarget = (r, c) => matrix[r][c] === 1;
    marked = "targets 1 marked";
  }
  const what = extra ? `${extra[0].toUpperCase()}${extra.slice(1)} probabilities` : "Input probabilities";
  $("chart-title").textContent = `${what} per row${marked ? ` (${marked})` : ""}`;
  renderChart($("chart"), rows, isTarget);
}

function schedule() {
  clearTimeout(pending);
  pending = setTimeout(compute, 250);
}

function redraw() {
  const d = state.description;
  $("loss-title").textContent = `${d.name} (torch.nn.${d.module})`;
  $("loss-summary").textContent = d.summary;
  $("loss-formula").textContent = d.formula;
  renderEditors($("grid"), {
    inputs: d.inputs, values: state.values, modes: state.modes, reading: state.readings.get(state.loss),
  }, (name, value, error) => {
    if (error) state.errors[name] = error;
    else {
      delete state.errors[name];
      if (value === undefined) delete state.values[name];
      else state.values[name] = value;
    }
    shapeButtons();
    schedule();
  });
  renderParams($("params"), {
    parameters: d.parameters, reductions: state.catalogue.get(state.loss)?.reductions, params: state.params,
  }, (name, value) => {
    if (value === undefined) delete state.params[name];
    else state.params[name] = value;
    schedule();
  });
  shapeButtons();
  schedule();
}

function shapeButtons() {
  const shape = gridShape(state.values[inputNames()[0]]);
  const rows = Boolean(shape && shape.length >= 1);
  const cols = Boolean(shape && shape.length === 2);
  $("add-row").disabled = !rows;
  $("remove-row").disabled = !rows || shape[0] <= 1;
  $("add-col").disabled = !cols;
  $("remove-col").disabled = !cols || shape[1] <= 1;
}

/** A loss and its catalogue example (GET /v1/losses/{name}): inputs, then options. */
async function loadLoss(name) {
  const mine = ++loading;
  try {
    const described = await getJSON(`v1/losses/${name}`);
    if (mine !== loading) return;
    const inputs = new Set(described.inputs.map((i) => i.name));
    state.loss = name;
    state.description = described;
    state.values = {};
    state.params = {};
    state.modes = {};
    state.errors = {};
    for (const [key, value] of Object.entries(described.example || {})) {
      if (inputs.has(key)) state.values[key] = value;
      else state.params[key] = value;
    }
    $("loss").value = name;
    if (window.location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
    redraw();
  } catch (err) {
    if (mine === loading) refused(err);
  }
}

/** The losses that have conventions, in the selector; then the one the address names, or the
 * article's, or the first. */
async function boot() {
  try {
    const listed = await getJSON("v1/conventions");
    state.catalogue = new Map(listed.losses.map((entry) => [entry.name, entry]));
    const select = $("loss");
    select.replaceChildren();
    for (const entry of listed.losses) {
      const option = document.createElement("option");
      option.value = entry.name;
      option.textContent = `${entry.name} (${entry.module})`;
      select.appendChild(option);
    }
    state.booted = true;
    $("key-form").hidden = true;
    showProblem("");
    $("load-article").hidden = !state.catalogue.has(ARTICLE);
    const wanted = decodeURIComponent(window.location.hash.slice(1));
    const first = state.catalogue.has(wanted) ? wanted : state.catalogue.has(ARTICLE) ? ARTICLE : listed.losses[0]?.name;
    if (first) await loadLoss(first);
    else showProblem("No loss has conventions on this service.");
  } catch (err) {
    refused(err);
  }
}

function wire() {
  $("load-article").addEventListener("click", () => loadLoss(ARTICLE));
  $("load-example").addEventListener("click", () => state.loss && loadLoss(state.loss));
  $("loss").addEventListener("change", () => loadLoss($("loss").value));
  $("dtype").addEventListener("change", () => { state.dtype = $("dtype").value; schedule(); });
  const reshape = (axis, delta) => {
    if (resize(state.values, state.description?.inputs || [], axis, delta)) redraw();
  };
  $("add-row").addEventListener("click", () => reshape("row", 1));
  $("remove-row").addEventListener("click", () => reshape("row", -1));
  $("add-col").addEventListener("click", () => reshape("col", 1));
  $("remove-col").addEventListener("click", () => reshape("col", -1));
  $("diagnose-form").addEventListener("submit", (event) => {
    event.preventDefault();
    diagnose();
  });
  $("use-key").addEventListener("click", () => {
    setApiKey($("api-key").value.trim());
    if (!state.booted) boot();
    else if (!state.description) loadLoss($("loss").value);
    else compute();
  });
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
boot();
