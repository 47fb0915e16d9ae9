// One SVG bar chart per row of probabilities: those the service returned (an extra such as
// `softmax` or `sigmoid`), or the input itself where torch reads it as probabilities; the
// targets marked. The SVG scales down with its box (viewBox), so a phone shows it whole.

const SVG = "http://www.w3.org/2000/svg";
const W = 360, H = 110, PAD = 18;

function el(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** rows: [[p, ...], ...]; isTarget(r, c) says which bars are targets. */
export function renderChart(root, rows, isTarget) {
  root.replaceChildren();
  rows.forEach((probs, r) => {
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, class: "row-chart", role: "img" });
    svg.appendChild(el("title", {}, `row ${r}`));
    svg.appendChild(el("text", { x: 4, y: 12 }, `row ${r}`));
    const slot = (W - 2 * PAD) / Math.max(probs.length, 1);
    probs.forEach((p, c) => {
      const value = typeof p === "number" ? p : 0;
      const h = Math.max(0, Math.min(1, value)) * (H - 2 * PAD - 8);
      const x = PAD + c * slot + slot * 0.15;
      const target = isTarget(r, c);
      const bar = el("rect", {
        x, y: H - PAD - h, width: slot * 0.7, height: h,
        class: target ? "bar target" : "bar", "data-row": r, "data-col": c,
      });
      bar.appendChild(el("title", {}, `column ${c}: ${typeof p === "number" ? p.toFixed(4) : p}${target ? " (target)" : ""}`));
      svg.appendChild(bar);
      svg.appendChild(el("text", { x: x + slot * 0.35, y: H - PAD - h - 3, "text-anchor": "middle" },
        typeof p === "number" ? p.toFixed(3) : String(p)));
      svg.appendChild(el("text", { x: x + slot * 0.35, y: H - 5, "text-anchor": "middle" },
        target ? `${c} ▲ target` : String(c)));
    });
    root.appendChild(svg);
  });
}
