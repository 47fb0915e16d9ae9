// The service's own API, called relative to the page so that a path prefix keeps working.
// An API key, once given, is kept in sessionStorage and sent as a bearer token.

const KEY = "loss-service-api-key";

export class Unauthorized extends Error {}

export class Problem extends Error {
  constructor(problem) {
    super(problem.detail || problem.title || "request refused");
    this.problem = problem;
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY) || "";
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

function headers(json) {
  const out = { Accept: "application/json" };
  if (json) out["Content-Type"] = "application/json";
  const key = apiKey();
  if (key) out.Authorization = `Bearer ${key}`;
  return out;
}

async function answer(response) {
  if (response.status === 401) throw new Unauthorized("an API key is required");
  const body = await response.json();
  if (!response.ok) throw new Problem(body);
  return body;
}

export async function getJSON(path) {
  return answer(await fetch(path, { headers: headers(false) }));
}

export async function postJSON(path, body) {
  return answer(
    await fetch(path, { method: "POST", headers: headers(true), body: JSON.stringify(body) }),
  );
}

/** The curl command for the same request, the key left as a variable. */
export function curlCommand(path, body) {
  const url = new URL(path, window.location.href).href;
  const key = apiKey() ? ` \\\n  -H "Authorization: Bearer $LOSS_SERVICE_API_KEY"` : "";
  const data = JSON.stringify(body).replaceAll("'", "'\\''");
  return `curl -s ${url} \\\n  -H 'Content-Type: application/json'${key} \\\n  -d '${data}'`;
}
