// The stockbatch dashboard: logs in at /oauth/token and reads the JSON API. Plain ES
// modules, no framework and no build step; every value from the server goes into the
// page as text, never as HTML.

import { lineChart, short, stackedBars } from "/ui/charts.js";

const SESSION = "stockbatch.dashboard";
/** How often the open view reads the server again. */
const REFRESH_MS = 2000;
/** Most results rows drawn at once (the export has them all). */
const MAX_ROWS = 1000;

let session = load();
/** The view on screen: {node, refresh()}; `busy` while it reads the server. */
let current = null;

// ---------------------------------------------------------------- small helpers

/** `h("a", {href, class, onclick}, "text", child, [more])`: an element. */
function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

const $ = (selector, root = document) => root.querySelector(selector);
const n = (v) => Number(v ?? 0).toLocaleString();

function ago(iso) {
  if (!iso) return "";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

function when(iso) {
  return iso ? h("time", { datetime: iso, title: new Date(iso).toLocaleString() }, ago(iso)) : "—";
}

function duration(seconds) {
  if (!(seconds > 0)) return "—";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function badge(text, kind = text) {
  return h("span", { class: `badge ${String(kind).toLowerCase()}` }, text);
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, v);
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}

function movementsLink(retailerId, skuRef, locationRef, label = "movements →") {
  return h("a", { href: `#/movements${query({ retailerId, skuRef, locationRef })}`, class: "position" }, label);
}

// ---------------------------------------------------------------- session and API

function load() {
  try {
    return JSON.parse(sessionStorage.getItem(SESSION)) || null;
  } catch {
    return null;
  }
}

function save(value) {
  session = value;
  if (value) sessionStorage.setItem(SESSION, JSON.stringify(value));
  else sessionStorage.removeItem(SESSION);
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Calls the API with the session's token; JSON in and out unless `raw`. */
async function api(path, { method = "GET", body, headers = {}, raw = false } = {}) {
  const response = await fetch(path, {
    method,
    headers: {
      Authorization: `Bearer ${session?.token}`,
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    logout("Your session has ended: log in again.");
    throw new ApiError(401, "not logged in");
  }
  const text = await response.text();
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const errors = JSON.parse(text).errors;
      if (errors?.length) message = errors.map((e) => e.message).join("; ");
    } catch {
      // Not the errors body: keep the status line.
    }
    throw new ApiError(response.status, message);
  }
  return raw ? text : text ? JSON.parse(text) : null;
}

/** Runs `work`, showing what went wrong in `where` (and clearing it when all is well). */
async function guarded(where, work) {
  try {
    const value = await work();
    if (where) fill(where);
    return value;
  } catch (e) {
    if (where && !(e instanceof ApiError && e.status === 401)) {
      fill(where, h("p", { class: "error", role: "alert" }, e.message));
    }
    return undefined;
  }
}

function logout(message) {
  save(null);
  render(message);
}

// ---------------------------------------------------------------- login

function loginView(message) {
  const error = h("p", { class: "error", role: "alert", id: "login-error" }, message || "");
  const remembered = localStorage.getItem(`${SESSION}.client`) || "";
  const field = (label, name, type = "text", value = "") =>
    h("label", {}, label, h("input", { name, type, value, required: true, autocomplete: type === "password" ? "current-password" : "on" }));
  const form = h(
    "form",
    { class: "login card", id: "login", onsubmit: (e) => submit(e) },
    h("h1", {}, "Log in"),
    h("p", { class: "muted" }, "With a stockbatch user and the OAuth client it logs in through (see ", h("code", {}, "stockbatch client list"), ")."),
    field("Client id", "client_id", "text", remembered),
    field("Client secret", "client_secret", "password"),
    field("Username", "username"),
    field("Password", "password", "password"),
    h("button", { type: "submit" }, "Log in"),
    error,
  );
  async function submit(event) {
    event.preventDefault();
    const data = new FormData(form);
    const body = new URLSearchParams({ grant_type: "password", scope: "api" });
    for (const key of ["client_id", "client_secret", "username", "password"]) body.set(key, data.get(key));
    $("button", form).disabled = true;
    try {
      const response = await fetch("/oauth/token", {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body,
      });
      const answer = await response.json().catch(() => ({}));
      if (!response.ok) {
        fill(error, answer.error_description || answer.error || `${response.status} ${response.statusText}`);
        return;
      }
      localStorage.setItem(`${SESSION}.client`, data.get("client_id"));
      const retailer = answer.Retailer_id;
      save({
        token: answer.access_token,
        username: data.get("username"),
        retailerId: retailer === null || retailer === undefined ? null : String(retailer),
      });
      render();
    } catch (e) {
      fill(error, e.message);
    } finally {
      $("button", form).disabled = false;
    }
  }
  return { node: form };
}

// ---------------------------------------------------------------- overview: queue and jobs

function overviewView() {
  const admin = session.retailerId === null;
  const filters = { status: "", retailerId: "", start: 1 };
  const PAGE = 25;
  const cards = h("div", { class: "cards", id: "queue-cards" });
  const depthChart = h("figure", { class: "chart-box", id: "chart-depth" });
  const rateChart = h("figure", { class: "chart-box", id: "chart-rate" });
  const queueError = h("div");
  const jobsError = h("div");
  const table = h("table", { id: "jobs", class: "grid-table" });
  const pager = h("div", { class: "pager" });
  const statusSelect = h(
    "select",
    { name: "status", onchange: () => { filters.status = statusSelect.value; filters.start = 1; refresh(); } },
    h("option", { value: "" }, "All jobs"),
    h("option", { value: "OPEN" }, "Open"),
    h("option", { value: "CLOSED" }, "Closed"),
  );
  const retailerInput = admin
    ? h("input", {
        name: "retailerId",
        placeholder: "every retailer",
        size: 12,
        onchange: () => { filters.retailerId = retailerInput.value.trim(); filters.start = 1; refresh(); },
      })
    : null;
  const node = h(
    "div",
    { class: "view", id: "overview" },
    h("section", {},
      h("h2", {}, "Queue", session.retailerId ? ` of retailer ${session.retailerId}` : ""),
      queueError,
      cards,
      h("div", { class: "charts" }, depthChart, rateChart)),
    h("section", {},
      h("div", { class: "section-head" },
        h("h2", {}, "Jobs"),
        h("div", { class: "filters" },
          h("label", {}, "Status ", statusSelect),
          retailerInput && h("label", {}, "Retailer ", retailerInput))),
      jobsError,
      table,
      pager),
  );

  function drawQueue(q) {
    const series = q.series || [];
    const recent = series.slice(-5);
    const secondsSoFar = Math.max(1, (Date.parse(q.at) - Date.parse(series.at(-1)?.minute ?? q.at)) / 1000);
    const rate = (p, i, all) => {
      const seconds = i === all.length - 1 ? Math.min(60, secondsSoFar) : 60;
      return [(p.recordsApplied) / seconds, (p.recordsRejected) / seconds];
    };
    const recentRecords = recent.reduce((a, p) => a + p.recordsApplied + p.recordsRejected, 0);
    const recentSeconds = Math.max(1, (recent.length - 1) * 60 + Math.min(60, secondsSoFar));
    const card = (label, value, id, note) =>
      h("div", { class: "card stat", id }, h("div", { class: "value" }, value), h("div", { class: "label" }, label), note && h("div", { class: "note" }, note));
    fill(cards,
      card("batches pending", n(q.pendingBatches), "stat-pending", `${n(q.pendingRecords)} records`),
      card("batches running", n(q.runningBatches), "stat-running", `${n(q.runningRecords)} records`),
      card("oldest pending", duration(q.oldestPendingSeconds), "stat-oldest", q.oldestPendingOn ? `since ${new Date(q.oldestPendingOn).toLocaleTimeString()}` : "none waiting"),
      card("records/s, last 5 min", short(recentRecords / recentSeconds), "stat-rate", `${n(recentRecords)} records`),
      card("executors alive", n(q.executorsAlive), "stat-executors", q.executorsAlive ? "running the queue" : "none: batches wait"),
    );
    const t = (p) => new Date(p.minute);
    fill(depthChart,
      h("figcaption", {}, "Queue depth, last hour", h("span", { class: "muted" }, " · unfinished batches at each minute's end")),
      lineChart(series.map((p) => ({ t: t(p), v: p.queuedBatches })), { label: "Unfinished batches per minute over the last hour", unit: "batches queued", whole: true }));
    fill(rateChart,
      h("figcaption", {}, "Records/s, last hour",
        h("span", { class: "key applied" }, "applied"), h("span", { class: "key rejected" }, "not applied")),
      stackedBars(series.map((p, i, all) => ({ t: t(p), values: rate(p, i, all) })), {
        label: "Records per second applied and not applied, per minute over the last hour",
        series: [{ name: "applied", class: "applied" }, { name: "not applied", class: "rejected" }],
        unit: "records/s",
      }));
  }

  function drawJobs(page) {
    const rows = page.results.map((job) => {
      const b = job.batches;
      const r = job.records;
      return h("tr", { "data-job": job.jobId },
        h("td", {}, h("a", { href: `#/job/${job.jobId}`, class: "job-link" }, `#${job.jobId}`), " ", h("span", { class: "name" }, job.name)),
        admin && h("td", {}, job.retailerId),
        h("td", {}, badge(job.status)),
        h("td", { class: "batches" },
          `${n(b.total)}`,
          b.pending ? h("span", { class: "chip pending" }, `${n(b.pending)} pending`) : null,
          b.running ? h("span", { class: "chip running" }, `${n(b.running)} running`) : null,
          b.failed ? h("span", { class: "chip failed" }, `${n(b.failed)} with failures`) : null,
          b.cancelled ? h("span", { class: "chip cancelled" }, `${n(b.cancelled)} cancelled`) : null),
        h("td", { class: "num" }, n(r.applied), h("span", { class: "muted" }, " applied"), r.rejected ? h("span", { class: "bad" }, ` · ${n(r.rejected)} not`) : null, h("span", { class: "muted" }, ` / ${n(r.total)}`)),
        h("td", {}, h("progress", { max: 1, value: job.progress, title: `${Math.floor(job.progress * 100)} % processed` }), " ", `${Math.floor(job.progress * 100)} %`),
        h("td", {}, when(job.createdOn)));
    });
    fill(table,
      h("thead", {}, h("tr", {}, h("th", {}, "Job"), admin && h("th", {}, "Retailer"), h("th", {}, "Status"), h("th", {}, "Batches"), h("th", {}, "Records"), h("th", {}, "Progress"), h("th", {}, "Created"))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: admin ? 7 : 6, class: "muted" }, "No jobs yet."))));
    const last = Math.min(page.total, page.start + page.results.length - 1);
    fill(pager,
      h("span", { class: "muted" }, page.total ? `${n(page.start)}–${n(last)} of ${n(page.total)}` : ""),
      h("button", { type: "button", class: "quiet", disabled: page.start <= 1, onclick: () => { filters.start = Math.max(1, filters.start - PAGE); refresh(); } }, "← Newer"),
      h("button", { type: "button", class: "quiet", disabled: last >= page.total, onclick: () => { filters.start += PAGE; refresh(); } }, "Older →"));
  }

  async function refresh() {
    const retailer = admin ? filters.retailerId : "";
    await Promise.all([
      guarded(queueError, async () => drawQueue(await api(`/api/v4.1/queue${query({ retailerId: retailer })}`))),
      guarded(jobsError, async () =>
        drawJobs(await api(`/api/v4.1/jobs${query({ status: filters.status, retailerId: retailer, start: filters.start, count: PAGE })}`))),
    ]);
  }
  return { node, refresh };
}

// ---------------------------------------------------------------- one job and its batches

function jobView(jobId) {
  const head = h("div", { class: "section-head" });
  const error = h("div");
  const table = h("table", { id: "batches", class: "grid-table" });
  const node = h("div", { class: "view", id: "job" }, h("p", {}, h("a", { href: "#/" }, "← Jobs")), head, error, table);
  let job = null;

  async function act(button, what, path, options = {}) {
    if (!confirm(what)) return;
    button.disabled = true;
    await guarded(error, () => api(path, { method: "POST", ...options }));
    await refresh();
  }

  function drawBatch(b) {
    const failed = b.status === "COMPLETE" && b.rejectedEntities > 0;
    const base = `/api/v4.1/job/${jobId}/batch/${b.batchId}`;
    const flags = [
      b.cancelled && badge("cancelled", "cancelled"),
      b.cancelRequested && !b.cancelled && badge("cancel asked", "cancelled"),
      b.stalled && badge("stalled: no executor", "failed"),
      b.resubmittedFrom && h("span", { class: "muted" }, ` resubmitted from #${b.resubmittedFrom}`),
    ];
    const actions = [];
    if (b.status !== "COMPLETE") {
      const cancel = h("button", { type: "button", class: "danger", "data-action": "cancel", onclick: () => act(cancel, `Cancel batch ${b.batchId}? Records not yet applied will not be.`, `${base}/cancel`) }, "Cancel");
      actions.push(cancel);
    }
    if (b.status === "COMPLETE") {
      actions.push(h("a", { href: `#/job/${jobId}/batch/${b.batchId}/results?failed=1`, class: failed ? "button" : "button quiet", "data-action": "failures" }, failed ? `Failures (${n(b.rejectedEntities)})` : "Results"));
    }
    if (failed && job.status === "OPEN") {
      const resubmit = h("button", {
        type: "button",
        "data-action": "resubmit",
        // One key per batch: resubmitting it again from here gives the same new batch.
        onclick: () => act(resubmit, `Post batch ${b.batchId}'s ${b.rejectedEntities} records that were not applied again, as a new batch?`, `${base}/resubmit`, { headers: { "Idempotency-Key": `dashboard-resubmit-${b.batchId}` } }),
      }, "Resubmit failures");
      actions.push(resubmit);
    }
    return h("tr", { "data-batch": b.batchId, "data-status": b.status },
      h("td", {}, `#${b.batchId}`),
      h("td", { class: "status" }, badge(b.status), failed ? badge("failures", "failed") : null, flags),
      h("td", {}, h("progress", { max: b.totalEntities || 1, value: b.processedEntities }), ` ${n(b.processedEntities)} / ${n(b.totalEntities)}`),
      h("td", { class: "num" }, b.appliedEntities === null ? "—" : n(b.appliedEntities)),
      h("td", { class: b.rejectedEntities ? "num bad" : "num" }, b.rejectedEntities === null ? "—" : n(b.rejectedEntities)),
      h("td", { class: "num" }, b.unchangedEntities === null ? "—" : n(b.unchangedEntities)),
      h("td", {}, when(b.createdOn)),
      h("td", {}, when(b.completedOn)),
      h("td", { class: "actions" }, actions));
  }

  function draw() {
    const cancelJob = job.status === "OPEN"
      ? h("button", { type: "button", class: "danger", "data-action": "cancel-job", onclick: () => act(cancelJob, `Cancel job ${jobId}? It closes, and its unfinished batches are cancelled.`, `/api/v4.1/job/${jobId}/cancel`) }, "Cancel job")
      : null;
    fill(head,
      h("h2", {}, `Job #${job.jobId} `, h("span", { class: "name" }, job.name), " ", badge(job.status)),
      h("div", { class: "muted" }, `retailer ${job.retailerId} · created `, when(job.createdOn), ` · ${n(job.batch.length)} batch${job.batch.length === 1 ? "" : "es"}`),
      cancelJob);
    fill(table,
      h("thead", {}, h("tr", {}, ["Batch", "Status", "Progress", "Applied", "Not applied", "Unchanged", "Created", "Completed", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, job.batch.length ? job.batch.map(drawBatch) : h("tr", {}, h("td", { colspan: 9, class: "muted" }, "No batches yet."))));
  }

  async function refresh() {
    const loaded = await guarded(error, () => api(`/api/v4.1/job/${jobId}`));
    if (loaded) {
      job = loaded;
      draw();
    }
  }
  return { node, refresh };
}

// ---------------------------------------------------------------- a batch's results

function resultsView(jobId, batchId, failedOnly) {
  const error = h("div");
  const summary = h("p", { class: "muted", id: "results-summary" });
  const table = h("table", { id: "results", class: "grid-table" });
  const toggle = failedOnly
    ? h("a", { href: `#/job/${jobId}/batch/${batchId}/results` }, "Show every result")
    : h("a", { href: `#/job/${jobId}/batch/${batchId}/results?failed=1` }, "Show failures only");
  const node = h("div", { class: "view", id: "batch-results" },
    h("p", {}, h("a", { href: `#/job/${jobId}` }, `← Job #${jobId}`)),
    h("div", { class: "section-head" }, h("h2", {}, failedOnly ? "Failures" : "Results", ` of batch #${batchId}`), toggle),
    error, summary, table);
  let loaded = false;

  function row(line, retailerOfJob) {
    const record = line.record && typeof line.record === "object" && !Array.isArray(line.record) ? line.record : null;
    const retailerId = record?.retailerId ?? retailerOfJob;
    const position = record && record.skuRef !== undefined && record.locationRef !== undefined
      ? movementsLink(String(retailerId), String(record.skuRef), String(record.locationRef))
      : null;
    return h("tr", { class: line.responseCode === 200 ? "" : "failed", "data-index": line.index },
      h("td", { class: "num" }, line.index),
      h("td", {}, badge(String(line.responseCode), line.responseCode === 200 ? "complete" : "failed")),
      h("td", { class: "message" }, line.message),
      h("td", { class: "record" },
        record ? h("div", { class: "keys" }, h("strong", {}, String(record.skuRef ?? "(no skuRef)")), " at ", h("strong", {}, String(record.locationRef ?? "(no locationRef)")), record.qty !== undefined ? ` · qty ${JSON.stringify(record.qty)}` : "") : null,
        h("code", {}, JSON.stringify(line.record))),
      h("td", {}, position));
  }

  async function refresh() {
    if (loaded) return;
    const base = `/api/v4.1/job/${jobId}`;
    await guarded(error, async () => {
      const [job, text] = await Promise.all([
        api(base),
        api(`${base}/batch/${batchId}/results${query({ format: "ndjson", failed: failedOnly ? "true" : "" })}`, { raw: true, headers: { Accept: "application/x-ndjson" } }),
      ]);
      const lines = text.split("\n").filter(Boolean).map((l) => JSON.parse(l));
      const batch = job.batch.find((b) => b.batchId === batchId);
      fill(summary, failedOnly
        ? `${n(lines.length)} of ${n(batch?.totalEntities)} records were not applied.`
        : `${n(lines.length)} results.`,
        lines.length > MAX_ROWS ? ` The first ${n(MAX_ROWS)} are shown; the export at ${base}/batch/${batchId}/results has them all.` : "");
      fill(table,
        h("thead", {}, h("tr", {}, ["#", "Code", "Message", "Record", "Position"].map((t) => h("th", {}, t)))),
        h("tbody", {}, lines.length
          ? lines.slice(0, MAX_ROWS).map((l) => row(l, job.retailerId))
          : h("tr", {}, h("td", { colspan: 5, class: "muted" }, failedOnly ? "Every record was applied." : "No results."))));
      loaded = true;
    });
  }
  return { node, refresh };
}

// ---------------------------------------------------------------- one position's movements

function movementsView(params) {
  const own = session.retailerId;
  const wanted = {
    retailerId: own ?? params.get("retailerId") ?? "",
    skuRef: params.get("skuRef") ?? "",
    locationRef: params.get("locationRef") ?? "",
  };
  const input = (name, label) => h("label", {}, label, h("input", { name, value: wanted[name], disabled: name === "retailerId" && own !== null }));
  const form = h("form", { class: "filters", id: "movement-search", onsubmit: (e) => {
    e.preventDefault();
    const data = new FormData(form);
    location.hash = `#/movements${query({ retailerId: own ?? data.get("retailerId"), skuRef: data.get("skuRef"), locationRef: data.get("locationRef") })}`;
  } },
  input("retailerId", "Retailer "), input("skuRef", "SKU "), input("locationRef", "Location "), h("button", { type: "submit" }, "Show"));
  const error = h("div");
  const position = h("div", { id: "position" });
  const table = h("table", { id: "movements", class: "grid-table" });
  const node = h("div", { class: "view" },
    h("div", { class: "section-head" }, h("h2", {}, "Movements"), form),
    h("p", { class: "muted" }, "Every change of a position's quantity, by either API, newest first."),
    error, position, table);

  async function refresh() {
    const filter = { retailerId: wanted.retailerId, skuRef: wanted.skuRef, locationRef: wanted.locationRef };
    await guarded(error, async () => {
      const [positions, first] = await Promise.all([
        wanted.skuRef && wanted.locationRef ? api(`/api/v4.1/inventory${query({ ...filter, count: 1 })}`) : null,
        api(`/api/v4.1/inventory/movements${query({ ...filter, count: 1 })}`),
      ]);
      // The ledger reads oldest first: show its last page, newest on top.
      const start = Math.max(1, first.total - 99);
      const page = first.total > 1 ? await api(`/api/v4.1/inventory/movements${query({ ...filter, start, count: 100 })}`) : first;
      const p = positions?.results?.[0];
      fill(position, p
        ? h("div", { class: "card position-card" },
          h("div", { class: "value" }, n(p.qty)),
          h("div", {}, h("strong", {}, p.skuRef), " at ", h("strong", {}, p.locationRef), ` · retailer ${p.retailerId}`),
          h("div", { class: "muted" }, "updated ", when(p.updatedOn), p.status ? ` · ${p.status}` : ""))
        : wanted.skuRef && wanted.locationRef ? h("p", { class: "muted" }, "No such position.") : null);
      const rows = page.results.slice().reverse().map((m) =>
        h("tr", { "data-movement": m.id },
          h("td", {}, when(m.createdOn)),
          h("td", {}, m.skuRef, h("span", { class: "muted" }, " at "), m.locationRef),
          h("td", {}, m.operation, h("span", { class: "muted" }, ` (${m.api})`)),
          h("td", { class: "num" }, n(m.previousQty), " → ", h("strong", {}, n(m.newQty))),
          h("td", { class: m.delta < 0 ? "num bad" : "num good" }, m.delta > 0 ? `+${n(m.delta)}` : n(m.delta)),
          h("td", {}, `batch #${m.batchId}`),
          h("td", { class: "muted" }, [m.reason, m.reference].filter(Boolean).join(" · "))));
      fill(table,
        h("thead", {}, h("tr", {}, ["When", "Position", "Operation", "Quantity", "Change", "Batch", "Reason"].map((t) => h("th", {}, t)))),
        h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No movements."))));
    });
  }
  return { node, refresh };
}

// ---------------------------------------------------------------- routing and refreshing

function route() {
  const [path, search = ""] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(search);
  const parts = path.split("/").filter(Boolean);
  if (parts[0] === "job" && parts[1] && parts[2] === "batch" && parts[3] && parts[4] === "results") {
    return resultsView(parts[1], parts[3], params.get("failed") === "1");
  }
  if (parts[0] === "job" && parts[1]) return jobView(parts[1]);
  if (parts[0] === "movements") return movementsView(params);
  return overviewView();
}

function render(message) {
  const main = $("#main");
  const loggedIn = Boolean(session?.token);
  $("#nav").hidden = !loggedIn;
  $("#logout").hidden = !loggedIn;
  fill($("#who"), loggedIn
    ? [h("strong", {}, session.username), session.retailerId === null ? " · administrator, every retailer" : ` · retailer ${session.retailerId}`]
    : []);
  current = loggedIn ? route() : null;
  fill(main, loggedIn ? current.node : loginView(message).node);
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.getAttribute("href") === `#/${location.hash.replace(/^#\/?/, "").split(/[/?]/)[0]}`);
  }
  tick();
}

async function tick() {
  const view = current;
  if (!view || view.busy) return;
  view.busy = true;
  try {
    await view.refresh();
  } finally {
    view.busy = false;
  }
}

window.addEventListener("hashchange", () => render());
$("#logout").addEventListener("click", () => logout("Logged out."));
setInterval(() => {
  if (document.visibilityState === "visible") tick();
}, REFRESH_MS);
render();
