// The C3 Render dashboard: a page of this API, talking to it with the signed-in key.
// Everything a job holds is shown as text (textContent), never as HTML; the page's
// Content-Security-Policy allows scripts from this origin only.
"use strict";

const KEY = "c3render.key";
const STATUSES = ["queued", "running", "success", "failed", "cancelled", "timed_out"];
// gen: which page is showing; a request or timer of an earlier page renders nothing.
// job: the job on screen (its last view); watching: the page (gen) whose job is being polled.
const state = { me: null, types: [], schemas: {}, cursors: [null], page: 0, timers: [], jobId: null, gen: 0,
  job: null, watching: null, cancelReply: null, resultShown: null, refreshFailed: false };
const ENDED = ["success", "failed", "cancelled", "timed_out"];

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
    if (reply.status === 401) signOut("Your key was refused: sign in again.", true);
    throw new ApiError(reply.status, data);
  }
  return data;
}

function when(iso) { return iso ? new Date(iso).toLocaleString() : ""; }
function unixWhen(seconds) { return seconds ? new Date(seconds * 1000).toLocaleString() : ""; }
function humanStatus(status) { return String(status || "").replace(/_/g, " "); }
function statusBadge(status) { return el("span", { class: `status status-${status}`, text: humanStatus(status) }); }
function capitalized(text) { const s = String(text || ""); return s ? s[0].toUpperCase() + s.slice(1) : s; }
// A length of time as a person reads it: "0.8 s" under a minute (a short clip is never "0:00"), else "2 min 5 s".
function seconds(value) {
  const s = Number(value);
  if (!Number.isFinite(s)) return "";
  if (s < 60) return `${s.toFixed(1)} s`;
  const whole = Math.round(s);
  return `${Math.floor(whole / 60)} min ${whole % 60} s`;
}
// A player's position against its length: "0.3 / 0.8 s" under a minute, "1:02 / 3:10" beyond.
function clock(at, length) {
  if (!Number.isFinite(length) || length <= 0) return `${(at || 0).toFixed(1)} s`;
  if (length < 60) return `${Math.min(at || 0, length).toFixed(1)} / ${length.toFixed(1)} s`;
  const mmss = (t) => `${Math.floor(t / 60)}:${String(Math.floor(t % 60)).padStart(2, "0")}`;
  return `${mmss(at || 0)} / ${mmss(length)}`;
}
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

// keepRoute: the address stays as it is (a refused key): signing in again goes back to it.
function signOut(message, keepRoute) {
  sessionStorage.removeItem(KEY);
  state.me = null;
  $("who").hidden = true;
  $("nav").hidden = true;
  $("sign-in-error").textContent = message || "";
  if (!keepRoute && !location.hash.startsWith("#/sign-in")) location.hash = "#/sign-in";
  route();
}

// Where signing in leads: the route the page was opened at (a link to a job, say), else the jobs.
function afterSignIn() {
  const [, page] = (location.hash || "").split("/");
  return !page || page === "sign-in" ? "#/jobs" : location.hash;
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
// The job section shows one job or, when it cannot be loaded, only why: nothing of an earlier job
// stays on screen (its title, player, timeline, deliveries, and actions that would act on it).

const enc = encodeURIComponent;

function resetJob() {
  state.job = null;
  state.cancelReply = null;
  state.resultShown = null;
  state.refreshFailed = false;
  $("job-title").textContent = "";
  $("job-actions").hidden = true;
  for (const name of ["cancel", "retry", "delete"]) $(`job-${name}`).disabled = true;
  $("job-message").textContent = "";
  $("job-notice").hidden = true;
  $("job-notice").textContent = "";
  $("job-back").hidden = true;
  $("job-body").hidden = true;
  for (const id of ["job-facts", "job-events", "job-webhooks"]) clear($(id));
  const box = clear($("job-result"));  // a player taken out of the page stops
  box.className = "muted";
  box.textContent = "Not ended yet.";
  $("job-input").textContent = "";
  $("job-metadata").textContent = "";
  $("job-progress").style.width = "0%";
  $("job-redeliver").hidden = true;
  delete document.body.dataset.jobStatus;
}

function jobMissing(id, error) {
  resetJob();
  const missing = error.status === 404;
  $("job-title").textContent = missing ? "Job not found" : "The job could not be loaded";
  $("job-message").textContent = missing
    ? `There is no job ${id} for this key: it may have been deleted, or the link is wrong.` : error.message;
  $("job-back").hidden = false;
}

async function openJob(id) {
  const gen = state.gen;
  resetJob();
  let ended;
  try {
    ended = await showJob(id, gen);
  } catch (error) {
    if (gen === state.gen) jobMissing(id, error);
    return;
  }
  if (!ended && gen === state.gen) watchJob(id);
}

// Refresh the job on screen every second until it ends; one watcher per page (a cancel pressed
// while it runs adds none). A job deleted meanwhile turns into "not found".
function watchJob(id) {
  const gen = state.gen;
  if (state.watching === gen) return;
  state.watching = gen;
  every(1000, async () => {
    try {
      const ended = await showJob(id, gen);
      if (state.refreshFailed) { $("job-message").textContent = ""; state.refreshFailed = false; }
      if (ended && state.watching === gen) state.watching = null;
      return ended;
    } catch (error) {
      if (gen !== state.gen) return true;
      if (error.status === 404) {
        jobMissing(id, error);
        state.watching = null;
        return true;
      }
      $("job-message").textContent = `Could not refresh the job: ${error.message}`;
      state.refreshFailed = true;
      return false;
    }
  });
}

// Returns whether the job has ended. Raises when the job itself cannot be read; a part of it that
// cannot (its timeline, say) says so in its own box.
async function showJob(id, gen = state.gen) {
  const job = await api("GET", `/jobs/${enc(id)}`);
  if (gen !== state.gen) return true;  // another page is showing now
  state.job = job;
  const ended = ENDED.includes(job.status);
  $("job-title").textContent = `${job.type} job ${job.id}`;
  const facts = clear($("job-facts"));
  const rows = [["Status", statusBadge(job.status)], ["Progress", `${Math.round((job.progress || 0) * 100)}%`],
    ["Created", when(job.created_at)], ["Started", when(job.started_at) || "not yet"],
    ["Finished", when(job.finished_at) || (ended ? "" : "not yet")],
    ["Attempt", `${job.attempt} of ${job.max_attempts}`], ["Node", job.node || (ended ? "none" : "not yet")],
    ["GPU time", `${(job.gpu_seconds || 0).toFixed(2)} s`], ["Cost", money(job.cost) || (ended ? "not priced" : "when it ends")]];
  if (job.queue_position !== undefined) {
    const ahead = Number(job.queue_position);
    rows.splice(1, 0, ["Queue position", ahead === 0 ? "next" : `${ahead} job${ahead === 1 ? "" : "s"} ahead`]);
  }
  if (job.retry_of) rows.push(["Retry of", el("a", { href: `#/jobs/${job.retry_of}`, text: job.retry_of.slice(0, 8) })]);
  if (job.error) rows.push(["Error", job.error]);
  for (const [name, value] of rows) facts.append(el("dt", { text: name }), el("dd", {}, value));
  $("job-progress").style.width = `${Math.round((job.progress || 0) * 100)}%`;
  $("job-input").textContent = JSON.stringify(job.input || {}, null, 2);
  $("job-metadata").textContent = job.metadata === undefined ? "None." : JSON.stringify(job.metadata, null, 2);
  $("job-body").hidden = false;
  $("job-actions").hidden = false;
  setActions(job);
  showNotice(job);
  document.body.dataset.jobStatus = job.status;
  await Promise.all([
    part(() => showEvents(id, gen), $("job-events"), "the timeline", gen),
    ended ? part(() => showResult(id, gen), $("job-result"), "the result", gen) : Promise.resolve(),
    part(() => showWebhooks(id, gen), $("job-webhooks"), "the webhook deliveries", gen)]);
  return ended;
}

async function part(work, box, what, gen) {
  try {
    await work();
  } catch (error) {
    if (gen === state.gen) clear(box).append(el("p", { class: "error", text: `Could not load ${what}: ${error.message}` }));
  }
}

function setActions(job) {
  const ended = ENDED.includes(job.status);
  const cancel = $("job-cancel");
  cancel.disabled = ended || Boolean(job.cancel_requested);
  cancel.title = ended ? "The job has ended: nothing to cancel" : (job.cancel_requested ? "A cancel was requested" : "");
  const retry = $("job-retry");
  retry.disabled = !["failed", "cancelled", "timed_out"].includes(job.status);
  retry.title = retry.disabled ? "Only a failed, cancelled or timed-out job can be tried again" : "";
  $("job-delete").disabled = false;
}

// What became of a cancel, in words: from the job's own view (so it is told when the page is opened
// later too), and from the answer to the Cancel just pressed.
function showNotice(job) {
  let text = "";
  let tone = "";
  if (job.cancel_outcome === "too_late") {
    tone = "warn";
    text = job.status === "success" ? "Cancel came too late: the job had already finished. Its result is below."
      : `Cancel came too late: the job had already ended (${humanStatus(job.status)}).`;
  } else if (job.cancel_requested) {
    text = "Cancel requested: waiting for the worker to stop the job…";
  } else if (state.cancelReply === "already_finished") {
    text = `Nothing to cancel: the job had already ended (${humanStatus(job.status)}).`;
  } else if (state.cancelReply && job.status === "cancelled") {
    text = state.cancelReply === "cancelled" ? "Cancelled before it started." : "Cancelled: the worker stopped the job.";
  }
  const notice = $("job-notice");
  notice.textContent = text;
  notice.hidden = !text;
  notice.className = tone ? `notice ${tone}` : "notice";
}

// The timeline in words, each event once (never its type and a message that only repeats it).
const EVENT_LABELS = {
  queued: () => "Queued",
  started: (e) => (Number(e.attempt) > 1 ? `Picked up again by a worker (attempt ${e.attempt})` : "Picked up by a worker"),
  node_acquired: (e) => (e.node ? `Started on node ${e.node}` : capitalized(e.message)),
  progress: (e) => `Progress ${e.message}`,
  finished: (e) => finishedLabel(e.status || "success", e.error),
  cancel_requested: () => "Cancel requested",
  cancel_too_late: (e) => (!e.status || e.status === "success" ? "Cancel came too late: the job had already finished"
    : `Cancel came too late: the job had already ended (${humanStatus(e.status)})`),
  marked: (e) => `Marked ${humanStatus(e.status)} by the client${e.error ? `: ${e.error}` : ""}`,
};

function finishedLabel(status, error) {
  if (status === "success") return "Finished";
  const name = capitalized(humanStatus(status));
  if (!error) return name;
  return error.toLowerCase().startsWith(humanStatus(status)) ? capitalized(error) : `${name}: ${error}`;
}

function eventLabel(event) {
  const label = EVENT_LABELS[event.type];
  if (label) return label(event);
  const name = capitalized(String(event.type || "").replace(/_/g, " "));
  const message = String(event.message || "");
  return message && message.toLowerCase() !== name.toLowerCase() ? capitalized(message) : name;
}

async function showEvents(id, gen) {
  const page = await api("GET", `/jobs/${enc(id)}/events`);
  if (gen !== state.gen) return;
  const list = clear($("job-events"));
  for (const event of page.events) {
    list.append(el("li", { "data-event": event.type }, el("span", { class: "muted", text: `${new Date(event.at).toLocaleTimeString()} ` }),
      el("span", { class: "event", text: eventLabel(event) })));
  }
}

// A player of our own: the browser's shows a clip under a second as "0:00 / 0:00". Its length is the
// media's own (its metadata), or the result's duration_s until that has loaded.
function player(tag, url, knownLength) {
  const media = el(tag, { preload: "auto", src: url, id: "result-media" });
  const play = el("button", { type: "button", id: "result-play", class: "play", text: "Play" });
  const seek = el("input", { type: "range", id: "result-seek", min: "0", max: "0", step: "0.01", value: "0", "aria-label": "Position" });
  const time = el("span", { id: "result-time", class: "time" });
  let length = Number.isFinite(knownLength) && knownLength > 0 ? knownLength : NaN;
  let frame = 0;
  const render = () => {
    time.textContent = clock(media.currentTime, length);
    seek.max = String(Number.isFinite(length) ? length : 0);
    seek.value = String(media.currentTime);
    play.textContent = media.paused ? "Play" : "Pause";
  };
  const tick = () => { render(); frame = media.paused ? 0 : requestAnimationFrame(tick); };
  const measured = () => {
    if (Number.isFinite(media.duration) && media.duration > 0) length = media.duration;
    render();
  };
  const toggle = () => { if (media.paused) media.play().catch(() => render()); else media.pause(); };
  media.addEventListener("loadedmetadata", measured);
  media.addEventListener("durationchange", measured);
  for (const name of ["timeupdate", "pause", "ended", "seeked"]) media.addEventListener(name, render);
  media.addEventListener("play", () => { if (!frame) tick(); });
  play.addEventListener("click", toggle);
  seek.addEventListener("input", () => { media.currentTime = Number(seek.value); render(); });
  const controls = el("div", { class: "player-controls" }, play, seek, time);
  if (tag === "video") {
    media.addEventListener("click", toggle);
    // Full screen has no page around it: the browser's own controls there.
    document.addEventListener("fullscreenchange", () => { media.controls = document.fullscreenElement === media; });
    controls.append(el("button", { type: "button", text: "Full screen", onclick: () => media.requestFullscreen && media.requestFullscreen() }));
  }
  render();
  return el("div", { class: `player player-${tag}` }, media, controls);
}

async function showResult(id, gen) {
  if (state.resultShown === id) return;  // shown already: a refresh does not restart its player
  const result = await api("GET", `/result/${enc(id)}`);
  if (gen !== state.gen) return;
  state.resultShown = id;
  const box = clear($("job-result"));
  box.className = "";
  if (result.status !== "success") {
    box.append(el("p", { class: "error", text: result.error || humanStatus(result.status) }));
    return;
  }
  const type = result.content_type || "";
  if (result.result_url && (type.startsWith("audio/") || type.startsWith("video/"))) {
    box.append(player(type.startsWith("audio/") ? "audio" : "video", result.result_url, Number(result.duration_s)));
  }
  if (result.text !== undefined) box.append(el("pre", { id: "result-text", text: result.text }));
  const links = el("p", {});
  if (result.result_url) links.append(el("a", { href: result.result_url, text: "Download", rel: "noopener" }), " ");
  for (const [name, url] of Object.entries(result.files || {})) links.append(el("a", { href: url, text: name, rel: "noopener" }), " ");
  box.append(links);
  const facts = [];
  if (result.duration_s !== undefined && result.duration_s !== null) facts.push(`Duration: ${seconds(result.duration_s)}`);
  if (result.language) facts.push(`Language: ${result.language}`);
  if (result.voice) facts.push(`Voice: ${result.voice}`);
  if (result.model) facts.push(`Model: ${result.model}`);
  if (result.width && result.height) facts.push(`Size: ${result.width} × ${result.height}`);
  if (facts.length) box.append(el("p", { class: "muted", id: "result-facts", text: facts.join(" · ") }));
}

const WEBHOOK_EVENTS = { started: "When it started", completed: "When it ended" };

async function showWebhooks(id, gen) {
  const log = await api("GET", `/jobs/${enc(id)}/webhooks`);
  if (gen !== state.gen) return;
  const box = clear($("job-webhooks"));
  if (!log.notify_url) {
    box.append(el("p", { class: "muted", text: "No webhook was requested." }));
  } else if (!log.deliveries.length) {
    box.append(el("p", { class: "muted", text: `Webhooks go to ${log.notify_url}: none sent yet.` }));
  }
  for (const delivery of log.deliveries) {
    box.append(el("p", {}, el("strong", { text: `${WEBHOOK_EVENTS[delivery.event] || capitalized(delivery.event)}: ${delivery.state}` }),
      ` to ${delivery.url}`));
    const list = el("ul", {});
    for (const attempt of delivery.attempts) {
      const outcome = attempt.status_code !== undefined && attempt.status_code !== null ? `HTTP ${attempt.status_code}` : (attempt.error || "no answer");
      const took = attempt.duration_ms !== undefined && attempt.duration_ms !== null ? `${Math.round(attempt.duration_ms)} ms` : "";
      list.append(el("li", { text: [when(attempt.at), outcome, took].filter(Boolean).join(" · ") }));
    }
    box.append(list);
  }
  $("job-redeliver").hidden = !log.notify_url;
}

async function jobAction(action) {
  const gen = state.gen;
  const buttons = ["cancel", "retry", "delete", "redeliver"].map((name) => $(`job-${name}`));
  buttons.forEach((button) => { button.disabled = true; });
  try {
    await runJobAction(action);
  } finally {
    $("job-redeliver").disabled = false;
    if (gen === state.gen && state.job) setActions(state.job);  // as the job now is, not as it was
  }
}

async function runJobAction(action) {
  const id = state.jobId;
  const gen = state.gen;
  $("job-message").textContent = "";
  try {
    if (action === "cancel") state.cancelReply = (await api("POST", `/jobs/${enc(id)}/cancel`)).cancel;
    if (action === "redeliver") await api("POST", `/jobs/${enc(id)}/webhooks/redeliver`);
    if (action === "retry") {
      const job = await api("POST", `/jobs/${enc(id)}/retry`, undefined, { "Idempotency-Key": requestId() });
      location.hash = `#/jobs/${job.id}`;
      return;
    }
    if (action === "delete") {
      if (!confirm("Delete this job and everything it left?")) return;
      await api("DELETE", `/jobs/${enc(id)}`);
      location.hash = "#/jobs";
      return;
    }
    const ended = await showJob(id, gen);
    if (!ended && gen === state.gen) watchJob(id);  // a cancel: watched until the job ends, to tell if it was in time
  } catch (error) {
    if (gen === state.gen) $("job-message").textContent = error.message;
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
    box.append(el("label", {}, `${capitalized(name.replace(/_/g, " "))}${required ? " *" : ""} `,
      el("code", { class: "field-name", text: name }), input, hint));
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

// A key by its name, its id beside it in grey; a key without a name (deleted, or a first-version
// owner) by its id.
function keyCell(key) {
  if (!key.key_name) {
    return el("td", { class: "key" }, el("span", { class: "key-id", text: key.key_id, title: "No name: a deleted key, or a first-version owner" }));
  }
  return el("td", { class: "key" }, el("span", { class: "key-name", text: key.key_name }), " ",
    el("span", { class: "key-id muted", text: key.key_id }));
}

async function showUsage() {
  const usage = await api("GET", "/usage?from=" + new Date(Date.now() - 29 * 86400000).toISOString().slice(0, 10));
  const body = clear($("usage-table").tBodies[0]);
  const budgets = [];
  for (const key of usage.keys) {
    for (const day of key.days) {
      body.append(el("tr", { "data-key": key.key_id }, keyCell(key), el("td", { text: day.date }), el("td", { text: String(day.jobs) }),
        el("td", { text: day.gpu_seconds.toFixed(1) }), el("td", { text: money(day.cost) })));
    }
    if (key.budget) budgets.push(`${key.key_name || key.key_id}: ${key.budget.remaining.toFixed(0)} of ${key.budget.gpu_seconds_per_day} GPU s left today`);
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
  state.jobId = page === "jobs" && id ? decodeURIComponent(id) : null;
  if (!sessionStorage.getItem(KEY) || !state.me || page === "sign-in") {
    if (sessionStorage.getItem(KEY) && page !== "sign-in") {
      try { await signIn(sessionStorage.getItem(KEY)); } catch (error) { /* signed out: the sign-in page */ }
      if (gen !== state.gen) return;
      if (state.me) return route();
    }
    // The address stays as it was asked for: signing in goes there (afterSignIn).
    $("sign-in-next").hidden = !state.jobId;
    $("sign-in-next").textContent = state.jobId ? `Sign in to open job ${state.jobId}.` : "";
    show("sign-in");
    return;
  }
  try {
    if (state.jobId) {
      show("job");
      await openJob(state.jobId);
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
    if (gen === state.gen) $("job-message").textContent = error.message;
  }
}

// -- start -------------------------------------------------------------------------------------

function start() {
  for (const status of STATUSES) $("filter-status").append(el("option", { value: status, text: humanStatus(status) }));
  $("sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await signIn($("key").value.trim());
      $("key").value = "";
      const target = afterSignIn();
      if (location.hash === target) route(); else location.hash = target;  // hashchange routes
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
