// The page's one state lives in the URL: range (a quick range, or from/to), tz, the
// filters role, rig, worker, bead, and the river's grouping. Every panel redraws from
// it; back/forward restore it. Setting state programmatically never echoes.
export const QUICK_RANGES = { "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3, "90d": 90 * 86400e3, "1y": 365 * 86400e3 };
export const DEFAULT_RANGE = "7d";
export const FILTERS = ["role", "rig", "worker", "bead"];
const KEYS = ["range", "from", "to", "tz", ...FILTERS, "by"];
const BY = ["role", "rig", "model"];

export function browserZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

/** The state a URL describes (defaults filled in). */
export function parse(search = location.search) {
  const params = new URLSearchParams(search);
  const state = {};
  for (const key of KEYS) {
    const value = params.get(key);
    if (value) state[key] = value;
  }
  if (!state.from || !state.to) {
    delete state.from;
    delete state.to;
    if (!(state.range in QUICK_RANGES)) state.range = DEFAULT_RANGE;
  } else {
    delete state.range;
  }
  if (!state.tz || !validZone(state.tz)) state.tz = browserZone();
  if (!BY.includes(state.by)) state.by = "role";
  return state;
}

function validZone(tz) {
  try {
    new Intl.DateTimeFormat("en", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** The query string of a state (defaults left out, so links stay short). */
export function serialize(state) {
  const text = query(state);
  return text ? `?${text}` : location.pathname;
}

/** The URL parameters of a state, without "?". */
export function query(state) {
  const params = new URLSearchParams();
  for (const key of KEYS) {
    const value = state[key];
    if (!value) continue;
    if (key === "range" && value === DEFAULT_RANGE) continue;
    if (key === "tz" && value === browserZone()) continue;
    if (key === "by" && value === "role") continue;
    params.set(key, value);
  }
  return params.toString();
}

/**
 * The time window of a state as instants (ms): a quick range ends now; from/to are
 * dates (whole days in tz, `to` inclusive) or RFC 3339 instants.
 */
export function windowOf(state, now = Date.now(), zonedMidnight) {
  if (state.range) return { start: now - QUICK_RANGES[state.range], end: now, relative: true };
  const bound = (value, isEnd) => {
    if (/^\d{4}-\d{2}-\d{2}$/.test(value)) {
      const base = zonedMidnight(value, state.tz);
      return isEnd ? zonedMidnight(nextDay(value), state.tz) : base;
    }
    return Date.parse(value);
  };
  return { start: bound(state.from, false), end: bound(state.to, true), relative: false };
}

export function nextDay(isoDate) {
  const d = new Date(`${isoDate}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + 1);
  return d.toISOString().slice(0, 10);
}

/** Holds the state, writes it to the URL and tells listeners; popstate restores it. */
export class Store {
  constructor() {
    this.state = parse();
    this.listeners = [];
    addEventListener("popstate", () => {
      this.state = parse();
      this.notify();
    });
  }

  subscribe(listener) {
    this.listeners.push(listener);
  }

  notify() {
    for (const listener of this.listeners) listener(this.state);
  }

  /** Apply a change: `range` drops from/to and vice versa; null removes a key. */
  set(patch) {
    const next = { ...this.state, ...patch };
    if (patch.range) {
      delete next.from;
      delete next.to;
    }
    if (patch.from || patch.to) delete next.range;
    for (const [key, value] of Object.entries(next)) if (value == null || value === "") delete next[key];
    const normal = parse(`?${query(next)}`);
    if (query(normal) === query(this.state)) return;
    this.state = normal;
    history.pushState(null, "", serialize(normal));
    this.notify();
  }

  reset() {
    this.set({ range: DEFAULT_RANGE, role: null, rig: null, worker: null, bead: null });
  }
}
