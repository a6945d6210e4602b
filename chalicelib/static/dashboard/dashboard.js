// The C3 Render dashboard: a page of this API, talking to it with the signed-in key.
// Everything a job holds is shown as text (textContent), never as HTML; the page's
// Content-Security-Policy allows scripts from this origin only.
"use strict";

const KEY = "c3render.key";
const STATUSES = ["queued", "running", "success", "failed", "cancelled", "timed_out"];
// gen: which page is showing; a request or timer of an earlier page renders nothing.
const state = { me: null, types: [], schemas: {}, cursors: [null], page: 0, timers: [], jobId: null, gen: 0 };

// -- helpers -------------------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }

class ApiError extends Error {
  constructor(status, body) {
    const error = body && body.error;
    const fields = error && Array.isArray(error.fields) ? error.fields.map((f) => `${f.field}: ${f.reason}`) : [];
    super(typeof error === "string" ? error : (fields.length ? fields.join("; ") : (error && error.message) || `HTTP ${status}`));
    this.status = status;
  }
}

async function api(method, path, body, extraHeaders) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(KEY) || ""}`, ...(extraHeaders || {}) };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const reply = await fetch(path.replace(/^\//, ""), { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (reply.status === 204) return null;
  const data = await reply.json().catch(() => ({}));
  if (!reply.ok) {
    if (reply.status === 401) signOut("Your key was refused: sign in again.");
    throw new ApiError(reply.status, data);
  }
  return data;
}

function when(iso) { return iso ? new Date(iso).toLocaleString() : ""; }
function unixWhen(seconds) { return seconds ? new Date(seconds * 1000).toLocaleString() : ""; }
function statusBadge(status) { return el("span", { class: `status status-${status}`, text: status }); }
// Refreshes: the next one is scheduled when this one has answered (a slow API never stacks them up),
// and only while the page that asked for it is still showing. fn returning true stops them.
function every(ms, fn) {
  const gen = state.gen;
  const tick = async () => {
    if (gen !== state.gen) return;
    let done = false;
    try { done = (await fn()) === true; } catch (error) { /* shown by the next refresh */ }
    if (!done && gen === state.gen) state.timers.push(setTimeout(tick, ms));
  };
  state.timers.push(setTimeout(tick, ms));
}
function stopTimers() { state.timers.forEach(clearTimeout); state.timers = []; }
function requestId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}
async function busy(buttons, work) {
  buttons.forEach((button) => { button.dataset.wasDisabled = button.disabled; button.disabled = true; });
  try { return await work(); } finally { buttons.forEach((button) => { button.disabled = button.dataset.wasDisabled === "true"; }); }
}
function money(value) { return value === null || value === undefined ? "" : value.toFixed(4); }

// -- signing in ----------------------------------------------------------------------------------

async function signIn(key) {
  sessionStorage.setItem(KEY, key);
  try {
    state.me = await api("GET", "/me");
  } catch (error) {
    sessionStorage.removeItem(KEY);
    throw error;
  }
  $("who-name").textContent = `${state.me.name || state.me.id}${state.me.admin ? " (admin)" : ""}`;
  $("who").hidden = false;
  $("nav").hidden = false;
  $("nav-nodes").hidden = !state.me.admin;
}

function signOut(message) {
  sessionStorage.removeItem(KEY);
  state.me = null;
  $("who").hidden = true;
  $("nav").hidden = true;
  $("sign-in-error").textContent = message || "";
  location.hash = "#/sign-in";
  route();
}

// -- the service's health (public) -----------------------------------------------------------

async function showService() {
  try {
    const reply = await fetch("health");
    const health = await reply.json();
    const queue = health.queue || {};
    $("service").textContent = `queue ${queue.depth ?? "?"} · workers ${(health.workers || {}).live ?? "?"}` +
      (health.status === "ok" ? "" : ` · ${health.status}`);
  } catch (error) {
    $("service").textContent = "the API does not answer";
  }
}

// -- jobs ------------------------------------------------------------------------------------------

async function showJobs() {
  const params = new URLSearchParams({ limit: "25" });
  const status = $("filter-status").value;
  const type = $("filter-type").value;
  if (status) params.set("status", status);
  if (type) params.set("type", type);
  const cursor = state.cursors[state.page];
  if (cursor) params.set("cursor", cursor);
  const page = await api("GET", `/jobs?${params}`);
  const body = clear($("jobs-table").tBodies[0]);
  for (const job of page.jobs) {
    const fill = el("div", {});
    fill.style.width = `${Math.round((job.progress || 0) * 100)}%`;  // CSSOM: allowed by the page's CSP
    const bar = el("div", { class: "bar" }, fill);
    body.append(el("tr", { "data-job": job.id },
      el("td", {}, el("a", { href: `#/jobs/${job.id}`, text: job.id.slice(0, 8) })),
      el("td", { text: job.type }), el("td", {}, statusBadge(job.status)), el("td", {}, bar),
      el("td", { text: when(job.created_at) }), el("td", { text: (job.gpu_seconds || 0).toFixed(1) }),
      el("td", { text: money(job.cost) }), el("td", { class: "error-cell", text: job.error || "", title: job.error || "" })));
  }
  $("jobs-empty").hidden = page.jobs.length > 0 || state.page > 0;
  state.cursors[state.page + 1] = page.next_cursor;
  $("page-older").disabled = !page.next_cursor;
  $("page-newer").disabled = state.page === 0;
  document.body.dataset.jobsShown = String(page.jobs.length);
  if (!document.body.dataset.firstPageMs) document.body.dataset.firstPageMs = String(Math.round(performance.now()));
}

// -- one job ---------------------------------------------------------------------------------------

async function showJob(id) {
  const job = await api("GET", `/jobs/${id}`);
  if (id !== state.jobId) return true;  // another page is showing now
  $("job-title").textContent = `${job.type} job ${job.id}`;
  const facts = clear($("job-facts"));
  const rows = [["status", statusBadge(job.status)], ["progress", `${Math.round((job.progress || 0) * 100)}%`],
    ["created", when(job.created_at)], ["started", when(job.started_at)], ["finished", when(job.finished_at)],
    ["attempt", `${job.attempt} of ${job.max_attempts}`], ["node", job.node || "none"],
    ["GPU seconds", (job.gpu_seconds || 0).toFixed(2)], ["cost", money(job.cost) || "not priced"]];
  if (job.queue_position !== undefined) rows.splice(1, 0, ["queue position", `${job.queue_position} ahead`]);
  if (job.retry_of) rows.push(["retry of", el("a", { href: `#/jobs/${job.retry_of}`, text: job.retry_of.slice(0, 8) })]);
  if (job.error) rows.push(["error", job.error]);
  for (const [name, value] of rows) facts.append(el("dt", { text: name }), el("dd", {}, value));
  $("job-progress").style.width = `${Math.round((job.progress || 0) * 100)}%`;
  $("job-input").textContent = JSON.stringify(job.input || {}, null, 2);
  $("job-metadata").textContent = job.metadata === undefined ? "none" : JSON.stringify(job.metadata, null, 2);
  const ended = ["success", "failed", "cancelled", "timed_out"].includes(job.status);
  $("job-cancel").disabled = ended;
  $("job-retry").disabled = !["failed", "cancelled", "timed_out"].includes(job.status);
  document.body.dataset.jobStatus = job.status;
  await Promise.all([showEvents(id), ended ? showResult(id) : Promise.resolve(), showWebhooks(id)]);
  return ended;
}

async function showEvents(id) {
  const page = await api("GET", `/jobs/${id}/events`);
  if (id !== state.jobId) return;
  const list = clear($("job-events"));
  for (const event of page.events) {
    list.append(el("li", {}, el("span", { class: "muted", text: `${new Date(event.at).toLocaleTimeString()} ` }),
      el("strong", { text: event.type }), ` ${event.message || ""}`));
  }
}

async function showResult(id) {
  const result = await api("GET", `/result/${id}`);
  if (id !== state.jobId) return;
  const box = clear($("job-result"));
  box.className = "";
  if (result.status !== "success") {
    box.append(el("p", { class: "error", text: result.error || result.status }));
    return;
  }
  const type = result.content_type || "";
  if (result.result_url && type.startsWith("audio/")) {
    box.append(el("audio", { controls: "", preload: "auto", src: result.result_url, id: "result-media" }));
  } else if (result.result_url && type.startsWith("video/")) {
    box.append(el("video", { controls: "", preload: "auto", src: result.result_url, id: "result-media" }));
  }
  if (result.text !== undefined) box.append(el("pre", { id: "result-text", text: result.text }));
  const links = el("p", {});
  if (result.result_url) links.append(el("a", { href: result.result_url, text: "download", rel: "noopener" }), " ");
  for (const [name, url] of Object.entries(result.files || {})) links.append(el("a", { href: url, text: name, rel: "noopener" }), " ");
  box.append(links);
  const extra = ["duration_s", "language", "voice", "model", "width", "height"].filter((k) => result[k] !== undefined && result[k] !== null);
  if (extra.length) box.append(el("p", { class: "muted", text: extra.map((k) => `${k}: ${result[k]}`).join(" · ") }));
}

async function showWebhooks(id) {
  const log = await api("GET", `/jobs/${id}/webhooks`);
  if (id !== state.jobId) return;
  const box = clear($("job-webhooks"));
  if (!log.notify_url) {
    box.append(el("p", { class: "muted", text: "No notify_url." }));
  }
  for (const delivery of log.deliveries) {
    box.append(el("p", {}, el("strong", { text: `${delivery.event}: ${delivery.state}` }), ` to ${delivery.url}`));
    const list = el("ul", {});
    for (const attempt of delivery.attempts) {
      list.append(el("li", { text: `${when(attempt.at)} ${attempt.status_code ?? attempt.error ?? ""} ${attempt.duration_ms ?? ""} ms` }));
    }
    box.append(list);
  }
  $("job-redeliver").hidden = !log.notify_url;
}

async function jobAction(action) {
  const buttons = ["cancel", "retry", "delete", "redeliver"].map((name) => $(`job-${name}`));
  return busy(buttons, () => runJobAction(action));
}

async function runJobAction(action) {
  const id = state.jobId;
  $("job-message").textContent = "";
  try {
    if (action === "cancel") await api("POST", `/jobs/${id}/cancel`);
    if (action === "redeliver") await api("POST", `/jobs/${id}/webhooks/redeliver`);
    if (action === "retry") {
      const job = await api("POST", `/jobs/${id}/retry`, undefined, { "Idempotency-Key": requestId() });
      location.hash = `#/jobs/${job.id}`;
      return;
    }
    if (action === "delete") {
      if (!confirm("Delete this job and everything it left?")) return;
      await api("DELETE", `/jobs/${id}`);
      location.hash = "#/jobs";
      return;
    }
    await showJob(id);
  } catch (error) {
    $("job-message").textContent = error.message;
  }
}

// -- a new job, from the API's own document ----------------------------------------------------

async function loadTypes() {
  const doc = await (await fetch("openapi.json")).json();
  state.types = Object.keys(doc.paths).filter((path) => doc.paths[path].post && (doc.paths[path].post.operationId || "").startsWith("submit_"))
    .map((path) => path.slice(1)).sort();
  for (const type of state.types) state.schemas[type] = doc.components.schemas[`${type[0].toUpperCase()}${type.slice(1)}Request`];
  const filter = $("filter-type");
  const pick = $("new-type");
  for (const type of state.types) {
    filter.append(el("option", { value: type, text: type }));
    pick.append(el("option", { value: type, text: type }));
  }
}

function fieldOf(schema) {
  // An optional field is documented as "type or null": the type that is not null.
  const options = schema.anyOf || [];
  const types = Array.isArray(schema.type) ? schema.type : [schema.type];
  return { kind: types.find((t) => t && t !== "null") || (options.length ? "url" : "string"), options };
}

function showNewForm() {
  const type = $("new-type").value;
  const schema = state.schemas[type] || { properties: {} };
  const box = clear($("new-fields"));
  for (const [name, property] of Object.entries(schema.properties)) {
    if ((property.description || "").startsWith("Alias of") || ["notify_events", "complete_in", "max_time"].includes(name)) continue;
    const { kind, options } = fieldOf(property);
    const hint = el("span", { class: "hint", text: property.description || "" });
    const required = (schema.required || []).includes(name);
    let input;
    if (property.enum) {
      input = el("select", { name });
      input.append(el("option", { value: "", text: "(default)" }));
      for (const value of property.enum.filter((v) => v !== null)) input.append(el("option", { value, text: value }));
    } else if (kind === "url" && options.length) {
      input = el("span", {}, el("input", { name, type: "text", placeholder: "https://… or upload:// (or choose a file)" }),
        el("input", { name: `${name}__file`, type: "file" }));
    } else if (kind === "array") {
      input = el("textarea", { name, rows: "3", placeholder: "one per line" });
    } else if (kind === "object") {
      input = el("textarea", { name, rows: "2", placeholder: '{"any": "JSON object"}' });
    } else if (name === "text" || name === "prompt") {
      input = el("textarea", { name, rows: "3" });
    } else {
      input = el("input", { name, type: kind === "integer" || kind === "number" ? "number" : "text", step: "any" });
    }
    box.append(el("label", {}, `${name}${required ? " *" : ""}`, input, hint));
  }
}

async function uploadFile(file) {
  const made = await api("POST", "/uploads", { filename: file.name, content_type: file.type || "application/octet-stream", size: file.size });
  const reply = await fetch(made.upload_url, { method: "PUT", headers: { "Content-Type": made.upload_headers["Content-Type"] }, body: file });
  if (!reply.ok) throw new Error(`uploading ${file.name} failed: HTTP ${reply.status}`);
  return made.url;
}

async function submitNew(event) {
  event.preventDefault();
  const buttons = Array.from($("new-form").querySelectorAll("button"));
  return busy(buttons, () => sendNew(requestId()));
}

// One Idempotency-Key per press of Submit: a request sent again is the same job, never a second one.
async function sendNew(idempotencyKey) {
  $("new-error").textContent = "";
  const type = $("new-type").value;
  const schema = state.schemas[type];
  const body = {};
  try {
    for (const [name, property] of Object.entries(schema.properties)) {
      const fileInput = document.querySelector(`[name="${name}__file"]`);
      if (fileInput && fileInput.files.length) {
        body[name] = await uploadFile(fileInput.files[0]);
        continue;
      }
      const input = document.querySelector(`#new-fields [name="${name}"]`);
      if (!input || input.value.trim() === "") continue;
      const { kind } = fieldOf(property);
      if (kind === "integer" || kind === "number") body[name] = Number(input.value);
      else if (kind === "array") body[name] = input.value.split("\n").map((s) => s.trim()).filter(Boolean);
      else if (kind === "object") body[name] = JSON.parse(input.value);
      else body[name] = input.value;
    }
    const job = await api("POST", `/${type}`, body, { "Idempotency-Key": idempotencyKey });
    location.hash = `#/jobs/${job.id}`;
  } catch (error) {
    $("new-error").textContent = error.message;
  }
}

// -- the pool, and usage ---------------------------------------------------------------------------

async function showNodes() {
  const pool = await api("GET", "/nodes");
  const body = clear($("nodes-table").tBodies[0]);
  for (const node of pool.nodes) {
    body.append(el("tr", {}, el("td", { text: node.node }), el("td", { text: node.state || "" }),
      el("td", { text: String(node.busy) }), el("td", { text: String(node.jobs_run) }),
      el("td", { text: unixWhen(node.idle_since) }), el("td", { text: node.expires ? unixWhen(node.expires) : "never" }),
      el("td", { text: (node.billed_s || 0).toFixed(0) }), el("td", { text: money(node.spend) })));
  }
  const total = pool.total || {};
  $("nodes-total").textContent = `Billed ${(total.billed_s || 0).toFixed(0)} node-s in all, ` +
    `${(total.billed_s_last_hour || 0).toFixed(0)} in the last hour` + (total.spend !== null && total.spend !== undefined ? `; spend ${money(total.spend)}` : "");
}

async function showUsage() {
  const usage = await api("GET", "/usage?from=" + new Date(Date.now() - 29 * 86400000).toISOString().slice(0, 10));
  const body = clear($("usage-table").tBodies[0]);
  const budgets = [];
  for (const key of usage.keys) {
    for (const day of key.days) {
      body.append(el("tr", {}, el("td", { text: key.key_id }), el("td", { text: day.date }), el("td", { text: String(day.jobs) }),
        el("td", { text: day.gpu_seconds.toFixed(1) }), el("td", { text: money(day.cost) })));
    }
    if (key.budget) budgets.push(`${key.key_id}: ${key.budget.remaining.toFixed(0)} of ${key.budget.gpu_seconds_per_day} GPU s left today`);
  }
  $("usage-budget").textContent = budgets.join("; ");
}

// -- routing -------------------------------------------------------------------------------------

const SECTIONS = ["sign-in", "jobs", "job", "new", "nodes", "usage"];

function show(section) {
  for (const name of SECTIONS) $(name).hidden = name !== section;
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.getAttribute("href") === `#/${section}`);
}

async function route() {
  const gen = ++state.gen;
  stopTimers();
  const [, page, id] = (location.hash || "#/jobs").split("/");
  state.jobId = page === "jobs" && id ? id : null;
  if (!sessionStorage.getItem(KEY) || !state.me || page === "sign-in") {
    if (sessionStorage.getItem(KEY) && page !== "sign-in") {
      try { await signIn(sessionStorage.getItem(KEY)); return route(); } catch (error) { /* fall through */ }
    }
    show("sign-in");
    return;
  }
  try {
    if (page === "jobs" && id) {
      show("job");
      const ended = await showJob(id);
      if (!ended && gen === state.gen) every(1000, () => showJob(id));
    } else if (page === "new") {
      show("new");
      showNewForm();
    } else if (page === "nodes") {
      show("nodes");
      await showNodes();
      if (gen === state.gen) every(5000, showNodes);
    } else if (page === "usage") {
      show("usage");
      await showUsage();
    } else {
      show("jobs");
      await showJobs();
      if (gen === state.gen) every(3000, () => state.page === 0 ? showJobs() : null);
    }
  } catch (error) {
    $("job-message").textContent = error.message;
  }
}

// -- start -------------------------------------------------------------------------------------

function start() {
  for (const status of STATUSES) $("filter-status").append(el("option", { value: status, text: status }));
  $("sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await signIn($("key").value.trim());
      $("key").value = "";
      location.hash = "#/jobs";
      route();
    } catch (error) {
      $("sign-in-error").textContent = error.message;
    }
  });
  $("sign-out").addEventListener("click", () => signOut(""));
  for (const id of ["filter-status", "filter-type"]) $(id).addEventListener("change", () => { state.cursors = [null]; state.page = 0; showJobs(); });
  $("page-older").addEventListener("click", () => { state.page += 1; showJobs(); });
  $("page-newer").addEventListener("click", () => { state.page = Math.max(0, state.page - 1); showJobs(); });
  for (const action of ["cancel", "retry", "delete", "redeliver"]) $(`job-${action}`).addEventListener("click", () => jobAction(action));
  $("new-type").addEventListener("change", showNewForm);
  $("new-form").addEventListener("submit", submitNew);
  window.addEventListener("hashchange", route);
  showService();
  setInterval(showService, 5000);
  loadTypes().then(route);
}

start();
