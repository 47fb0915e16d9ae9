// The loss's options, built from its JSON schema (GET /v1/losses/{name}: `parameters`): a select
// for an enum, a checkbox for a boolean, a number field for a number, a JSON field otherwise.
// `reduction` offers only what the conventions compare (GET /v1/conventions: `reductions`).
// Options the page sets itself (dtype, include) or that the conventions need (reference) are
// left out. A parameter the user has not touched is not sent: the service's default applies.

const OWN = new Set(["dtype", "include", "reference"]);

/** The non-null branch of an ``anyOf`` (``X | None`` in the service's models). */
function branch(schema) {
  if (!schema.anyOf) return { schema, nullable: false };
  const found = schema.anyOf.find((b) => b.type !== "null") || {};
  return { schema: { ...found, description: schema.description, default: schema.default }, nullable: true };
}

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * view: { parameters (name → JSON schema), reductions, params (name → value sent) };
 * onChange(name, value): value undefined means "leave it out".
 */
export function renderParams(root, view, onChange) {
  root.replaceChildren();
  for (const [name, raw] of Object.entries(view.parameters || {})) {
    if (OWN.has(name)) continue;
    const { schema, nullable } = branch(raw);
    const has = Object.hasOwn(view.params, name);
    const current = has ? view.params[name] : schema.default;
    const label = el("label", { class: "param", title: schema.description || "" });
    label.append(el("span", {}, name));
    let control;
    const options = name === "reduction" && view.reductions ? view.reductions : schema.enum;
    if (options) {
      control = el("select");
      for (const option of options) {
        const o = el("option", { value: JSON.stringify(option) }, String(option));
        control.appendChild(o);
      }
      control.value = JSON.stringify(current ?? options[0]);
      control.addEventListener("change", () => onChange(name, JSON.parse(control.value)));
    } else if (schema.type === "boolean") {
      control = el("input", { type: "checkbox" });
      control.checked = Boolean(current);
      control.addEventListener("change", () => onChange(name, control.checked));
    } else if (schema.type === "number" || schema.type === "integer") {
      control = el("input", { type: "number", step: schema.type === "integer" ? "1" : "any" });
      for (const bound of ["minimum", "maximum"]) {
        if (typeof schema[bound] === "number") control.setAttribute(bound.slice(0, 3), String(schema[bound]));
      }
      if (current !== undefined && current !== null) control.value = String(current);
      if (nullable || schema.default !== undefined) control.placeholder = String(schema.default ?? "none");
      control.addEventListener("input", () => {
        const text = control.value.trim();
        // An empty field is the default; anything else is sent as typed, for the service to judge.
        onChange(name, text === "" ? undefined : Number.isFinite(control.valueAsNumber) ? control.valueAsNumber : text);
      });
    } else {
      control = el("input", { type: "text", spellcheck: "false" });
      if (current !== undefined) control.value = JSON.stringify(current);
      control.placeholder = "JSON";
      control.addEventListener("input", () => {
        const text = control.value.trim();
        if (text === "") return onChange(name, undefined);
        try { onChange(name, JSON.parse(text)); } catch { onChange(name, text); }
      });
    }
    control.id = `param-${name}`;
    control.setAttribute("aria-label", name);
    label.appendChild(control);
    root.appendChild(label);
  }
  if (!root.children.length) root.appendChild(el("p", { class: "hint" }, "This loss takes no option beyond its reduction."));
}
