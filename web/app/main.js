// The page: builds a frame per panel, keeps them in step with the one state (URL),
// applies live events once per animation frame, and shows getting-started on an empty
// store. Panels never fetch or filter on their own account: they get a context.
import * as d3 from "../vendor/d3.js";
import * as api from "./api.js";
import { ROLES } from "./colors.js";
import { isoDateIn, zonedMidnight } from "./format.js";
import beads from "./panels/beads.js";
import calendar from "./panels/calendar.js";
import events from "./panels/events.js";
import feed from "./panels/feed.js";
import gauge from "./panels/gauge.js";
import river from "./panels/river.js";
import status from "./panels/status.js";
import tiles from "./panels/tiles.js";
import timeline from "./panels/timeline.js";
import treemap from "./panels/treemap.js";
import { QUICK_RANGES, Store, windowOf } from "./state.js";

const PANELS = [tiles, river, gauge, calendar, timeline, treemap, beads, feed, events];
const store = new Store();
const frames = new Map();
const alerts = [];
let live = null;
let firstDraw = true;

// ---- context handed to panels -------------------------------------------------------

function context(frame) {
  const state = store.state;
  const win = windowOf(state, Date.now(), zonedMidnight);
  const dims = { tz: state.tz, role: state.role, rig: state.rig, worker: state.worker, issue: state.bead };
  const params = { ...dims };
  // A quick range starts on the hour (on the minute for 1 h): the server then answers
  // from its hourly rollup alone, and equal requests share caches.
  const grain = win.end - win.start >= 86400e3 ? 3600e3 : 60e3;
  if (state.range) params.from = new Date(Math.floor(win.start / grain) * grain).toISOString();
  else Object.assign(params, { from: state.from, to: state.to });
  return {
    state,
    win,
    dims,
    params,
    tz: state.tz,
    alerts,
    width: Math.max(240, Math.floor(frame.body.getBoundingClientRect().width) || 600),
    choose(patch) {
      frame.chose = true; // its own choice: redraw at once, even under the pointer
      frame.section.value = patch;
      frame.section.dispatchEvent(new Event("input", { bubbles: true }));
    },
    busy(on) {
      frame.hold = on;
      if (!on) release(frame);
    },
    refresh: () => load(frame),
    /** The window of the state as it is now (a render's `win` may be a step behind). */
    currentWindow: () => windowOf(store.state, Date.now(), zonedMidnight),
  };
}

// ---- frames ---------------------------------------------------------------------------

function mount(panel, section) {
  section.classList.add("panel");
  section.dataset.panel = panel.id;
  section.setAttribute("aria-labelledby", `${panel.id}-title`);
  const head = d3.select(section).append("header");
  head.append("h2").attr("id", `${panel.id}-title`).text(panel.title);
  const summary = head.append("p").attr("class", "summary").attr("id", `${panel.id}-summary`).node();
  const body = d3.select(section).append("div").attr("class", "panel-body").node();
  const frame = { panel, section, body, summary, gen: 0, data: null, pending: null, hold: false, hover: false };
  section.addEventListener("pointerenter", () => (frame.hover = true));
  section.addEventListener("pointerleave", () => {
    frame.hover = false;
    release(frame);
  });
  frames.set(panel.id, frame);
  return frame;
}

async function load(frame) {
  const gen = ++frame.gen;
  frame.section.setAttribute("aria-busy", "true");
  try {
    const data = await frame.panel.fetch(context(frame));
    if (gen !== frame.gen) return; // a newer request superseded this one
    frame.data = data;
    frame.error = null;
    const held = frame.hold || (frame.hover && frame.drawn && !frame.chose && frame.panel.holdOnHover !== false);
    if (held) frame.pending = true;
    else draw(frame);
    frame.chose = false;
  } catch (error) {
    if (gen !== frame.gen) return;
    frame.error = error;
    frame.body.replaceChildren();
    d3.select(frame.body).append("p").attr("class", "error-note").text(`Could not load: ${error.message}`);
    frame.summary.textContent = `Could not load: ${error.message}`;
    markDrawn(frame);
  } finally {
    if (gen === frame.gen) frame.section.removeAttribute("aria-busy");
  }
}

function draw(frame) {
  frame.pending = null;
  const text = frame.panel.render(frame.body, frame.data, context(frame));
  frame.summary.textContent = text ?? "";
  markDrawn(frame);
}

function release(frame) {
  if (frame.hold || frame.hover) return;
  if (frame.pending) draw(frame);
  if (frame.live?.length) pushLive(frame);
}

/** Live arrivals into the feed (held while the pointer is over it: no shifting rows). */
function pushLive(frame) {
  const batch = frame.live;
  frame.live = [];
  frame.summary.textContent = feed.push(frame.body, batch, context(frame));
}

function markDrawn(frame) {
  frame.drawn = true;
  frame.section.dataset.drawn = "true";
  if (firstDraw && [...frames.values()].every((f) => f.drawn)) {
    firstDraw = false;
    performance.mark("gasometer:drawn");
    document.documentElement.dataset.drawn = "all";
  }
}

function loadAll({ status = true } = {}) {
  const all = [...frames.values()].filter((frame) => status || frame.panel.id !== "status");
  return Promise.all(all.map((frame) => load(frame)));
}

// ---- live -----------------------------------------------------------------------------

const MAX_QUEUED = 500;
let queue = [];
let scheduled = false;
const throttles = new Map();

function matches(event) {
  const s = store.state;
  return (!s.role || event.role === s.role) && (!s.rig || event.rig === s.rig)
    && (!s.worker || event.worker === s.worker) && (!s.bead || event.issue === s.bead);
}

function onEvents(list) {
  if (document.body.dataset.view === "start") {
    showDashboard();
    return;
  }
  // Under heavy ingest a frame can hold thousands of events: the feed shows the newest
  // few, and the numbers come from the API, so only the latest arrivals are kept.
  queue = queue.concat(list.filter(matches));
  if (queue.length > MAX_QUEUED) queue = queue.slice(-MAX_QUEUED);
  if (!scheduled && queue.length) {
    scheduled = true;
    requestAnimationFrame(applyLive);
  }
}

function applyLive() {
  scheduled = false;
  const batch = queue;
  queue = [];
  if (!batch.length) return;
  const feedFrame = frames.get("feed");
  feedFrame.live = (feedFrame.live ?? []).concat(batch).slice(-MAX_QUEUED);
  if (!feedFrame.hover) pushLive(feedFrame);
  throttled("headline", 1000, ["tiles", "gauge"]);
  const win = windowOf(store.state, Date.now(), zonedMidnight);
  const latest = Math.max(...batch.map((e) => Date.parse(e.ended_at)));
  if (store.state.range || latest < win.end) throttled("charts", 5000, ["river", "timeline", "treemap", "beads", "calendar", "events"]);
  throttled("status", 5000, ["status"]);
}

/** Reload these panels now, then at most once per `ms` while events keep coming. */
function throttled(name, ms, ids) {
  const entry = throttles.get(name) ?? { last: 0, timer: null };
  throttles.set(name, entry);
  const run = () => {
    entry.last = Date.now();
    entry.timer = null;
    for (const id of ids) {
      const frame = frames.get(id);
      if (frame && !(id === "events" && frame.panel.pageIndex?.() > 1)) load(frame);
    }
  };
  const wait = entry.last + ms - Date.now();
  if (wait <= 0) run();
  else entry.timer ??= setTimeout(run, wait);
}

function onAlert(alert) {
  alerts.push(alert);
  const frame = frames.get("river");
  if (!frame.data) return;
  if (frame.hold || frame.hover) frame.pending = true;
  else draw(frame);
}

function setLiveStatus(value) {
  const badge = document.getElementById("live");
  badge.dataset.status = value;
  badge.querySelector(".label").textContent = value === "live" ? "live" : value === "connecting" ? "connecting…" : "disconnected: retrying";
}

function liveFilter() {
  const s = store.state;
  return { role: s.role ?? null, rig: s.rig ?? null, worker: s.worker ?? null, issue: s.bead ?? null };
}

// ---- top bar ------------------------------------------------------------------------------

function setupControls() {
  const ranges = d3.select("#ranges").selectAll("button").data(Object.keys(QUICK_RANGES)).join("button")
    .attr("type", "button").text((d) => d).on("click", (_, d) => store.set({ range: d }));
  const from = document.getElementById("from");
  const to = document.getElementById("to");
  const applyDates = () => {
    if (from.value && to.value) store.set({ from: from.value, to: to.value <= from.value ? from.value : to.value });
  };
  from.addEventListener("change", applyDates);
  to.addEventListener("change", applyDates);
  const tz = document.getElementById("tz");
  const zones = Intl.supportedValuesOf ? Intl.supportedValuesOf("timeZone") : ["UTC"];
  d3.select(tz).selectAll("option").data([...new Set(["UTC", store.state.tz, ...zones])]).join("option").attr("value", (d) => d).text((d) => d);
  tz.addEventListener("change", () => store.set({ tz: tz.value }));
  for (const key of ["role", "rig", "worker", "bead"]) {
    const input = document.getElementById(`f-${key}`);
    input.addEventListener("change", () => store.set({ [key]: input.value || null }));
  }
  document.getElementById("reset").addEventListener("click", () => store.reset());
  return ranges;
}

function syncControls(ranges) {
  const s = store.state;
  ranges.attr("aria-pressed", (d) => String(d === s.range));
  const win = windowOf(s, Date.now(), zonedMidnight);
  document.getElementById("from").value = s.range ? "" : isoDateIn(win.start, s.tz);
  document.getElementById("to").value = s.range ? "" : isoDateIn(win.end - 1, s.tz);
  document.getElementById("tz").value = s.tz;
  for (const key of ["role", "rig", "worker", "bead"]) {
    const input = document.getElementById(`f-${key}`);
    if (input.tagName === "SELECT" && s[key] && !input.querySelector(`option[value="${CSS.escape(s[key])}"]`)) {
      d3.select(input).append("option").attr("value", s[key]).text(s[key]);
    }
    input.value = s[key] ?? "";
  }
  const chips = [];
  if (!s.range) chips.push({ key: "range", label: `range: ${s.from} → ${s.to}`, patch: { range: "7d" } });
  for (const key of ["role", "rig", "worker", "bead"]) if (s[key]) chips.push({ key, label: `${key}: ${s[key]}`, patch: { [key]: null } });
  d3.select("#chips").selectAll("button.chip").data(chips, (d) => d.key).join("button")
    .attr("type", "button").attr("class", "chip").attr("data-chip", (d) => d.key)
    .attr("aria-label", (d) => `Remove filter ${d.label}`)
    .text((d) => `${d.label} ✕`).on("click", (_, d) => store.set(d.patch));
  document.getElementById("reset").hidden = chips.length === 0;
}

async function fillChoices() {
  const [roles, rigs] = await Promise.all([api.get("/api/stats/roles"), api.get("/api/stats/rigs")]);
  const known = [...new Set([...roles.roles.map((r) => r.role), ...ROLES.filter((r) => r !== "unknown")])];
  d3.select("#f-role").selectAll("option.v").data(known).join("option").attr("class", "v").attr("value", (d) => d).text((d) => d);
  d3.select("#f-rig").selectAll("option.v").data(rigs.rigs.map((r) => r.rig)).join("option").attr("class", "v").attr("value", (d) => d).text((d) => d);
  syncControls(rangeButtons);
}

// ---- empty store and login -------------------------------------------------------------

function showStart() {
  document.body.dataset.view = "start";
  const origin = location.origin;
  document.getElementById("start-curl").textContent =
    `curl -X POST ${origin}/api/ingest \\\n  -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \\\n  -d '{"session_id": "gt-alpha", "cost_usd": 0.42, "ended_at": "${new Date().toISOString().slice(0, 19)}Z", "model": "claude-opus-4-5"}'`;
  document.getElementById("start-hook").textContent = `gasometer hooks install --url ${origin} --token $TOKEN`;
  document.getElementById("start-import").textContent =
    `gasometer import        # on this machine, or through the server:\ncurl -X POST -H "Authorization: Bearer $TOKEN" ${origin}/api/import`;
}

async function showDashboard({ status = true } = {}) {
  document.body.dataset.view = "dashboard";
  await loadAll({ status });
  fillChoices().catch(() => {}); // after the panels; the selects keep their defaults on error
}

function setupLogin() {
  const dialog = document.getElementById("login");
  const form = dialog.querySelector("form");
  const input = dialog.querySelector("input");
  const message = dialog.querySelector(".message");
  let attempts = 0;
  api.onTokenNeeded(
    () =>
      new Promise((resolve) => {
        message.textContent = attempts++ ? "That token was not accepted. Try again." : "";
        if (!dialog.open) dialog.showModal();
        input.focus();
        form.onsubmit = (event) => {
          event.preventDefault();
          dialog.close();
          resolve(input.value.trim());
          input.value = "";
        };
      }),
  );
}

// ---- start ------------------------------------------------------------------------------

const rangeButtons = setupControls();
setupLogin();
for (const panel of PANELS) mount(panel, document.getElementById(panel.id));
const statusFrame = mount(status, document.getElementById("status"));
frames.delete("status");
frames.set("status", statusFrame);
statusFrame.drawn = false;

document.getElementById("dashboard").addEventListener("input", (event) => {
  const section = event.target.closest?.("section.panel");
  if (section && section.value && typeof section.value === "object") store.set(section.value);
});

store.subscribe(() => {
  syncControls(rangeButtons);
  live?.setFilter(liveFilter());
  for (const frame of frames.values()) if (frame.panel.id !== "status") load(frame);
});

let lastWidth = 0;
new ResizeObserver(([entry]) => {
  const width = Math.round(entry.contentRect.width);
  if (!width || width === lastWidth) return; // height-only changes and hidden: ignore
  const first = lastWidth === 0;
  lastWidth = width;
  if (first) return;
  for (const frame of frames.values()) if (frame.data && !frame.error && frame.panel.id !== "status") draw(frame);
}).observe(document.getElementById("dashboard"));

setInterval(() => feed.tick(frames.get("feed").body), 5000);
setInterval(() => load(statusFrame), 30000);

async function boot() {
  syncControls(rangeButtons);
  // Health and the panels' reads go out together; an empty store then shows how to get
  // data in rather than empty charts. Reads first (and a login if they need one), then
  // the socket.
  document.body.dataset.view = "dashboard";
  const panels = loadAll({ status: false });
  await load(statusFrame);
  const health = statusFrame.data?.health;
  if (health && health.event_count === 0) showStart();
  await panels;
  if (document.body.dataset.view === "dashboard") fillChoices().catch(() => {});
  live = new api.Live({
    onEvents,
    onAlert,
    onStatus: setLiveStatus,
    onReconnect: () => {
      load(statusFrame);
      if (document.body.dataset.view !== "start") loadAll();
    },
  });
  live.filter = liveFilter();
  live.start();
}

boot();
