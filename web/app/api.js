// The API and live-stream client. Reads go through `get`: a 401 (reads closed, no
// session) asks for a token once, POSTs /api/session (the server sets an HttpOnly
// cookie) and retries. `Live` keeps /ws/live open, reconnecting with backoff 1 s -> 30 s.

export class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let login = null;
let askToken = null;

/** Register the prompt that asks the user for a token: () => Promise<string>. */
export function onTokenNeeded(prompt) {
  askToken = prompt;
}

/** Log in with a token: POST /api/session (204 sets the session cookie). */
export async function startSession(token) {
  const response = await fetch("/api/session", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token }),
    credentials: "same-origin",
  });
  if (response.status !== 204 && !response.ok) {
    throw new HttpError(response.status, await errorText(response));
  }
}

async function errorText(response) {
  try {
    return (await response.json()).error ?? response.statusText;
  } catch {
    return response.statusText;
  }
}

function ensureSession() {
  if (!login) {
    login = (async () => {
      for (;;) {
        const token = await askToken();
        try {
          await startSession(token);
          return;
        } catch (error) {
          if (error.status !== 401) throw error;
        }
      }
    })().finally(() => {
      login = null;
    });
  }
  return login;
}

const inFlight = new Map();

/**
 * GET a JSON endpoint; `params` with null/undefined values are left out. Panels asking
 * for the same URL at the same time share one request.
 */
export function get(path, params = {}) {
  const url = new URL(path, location.origin);
  for (const [key, value] of Object.entries(params)) {
    if (value != null && value !== "") url.searchParams.set(key, value);
  }
  const key = url.toString();
  let request = inFlight.get(key);
  if (!request) {
    request = fetchJson(url).finally(() => inFlight.delete(key));
    inFlight.set(key, request);
  }
  return request;
}

async function fetchJson(url) {
  for (let attempt = 0; ; attempt++) {
    const response = await fetch(url, { credentials: "same-origin" });
    if (response.status === 401 && askToken && attempt < 3) {
      await ensureSession();
      continue;
    }
    if (!response.ok) throw new HttpError(response.status, await errorText(response));
    return response.json();
  }
}

/**
 * /ws/live: calls onEvents(list) with the events of each frame (batched frames
 * `{type: "events"}` and single `{type: "event"}` alike), onAlert(alert) for budget
 * alerts, onStatus("live" | "connecting" | "disconnected"), onReconnect() after a drop.
 */
export class Live {
  constructor({ onEvents, onAlert, onStatus, onReconnect }) {
    Object.assign(this, { onEvents, onAlert, onStatus, onReconnect });
    this.delay = 1000;
    this.filter = {};
    this.everConnected = false;
    this.stopped = false;
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    return `${scheme}://${location.host}/ws/live`;
  }

  start() {
    this.onStatus("connecting");
    const socket = new WebSocket(this.url());
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.delay = 1000;
      this.send();
      this.onStatus("live");
      if (this.everConnected) this.onReconnect();
      this.everConnected = true;
    });
    socket.addEventListener("message", (message) => this.receive(message.data));
    socket.addEventListener("close", () => {
      if (this.stopped) return;
      this.onStatus("disconnected");
      const wait = this.delay;
      this.delay = Math.min(this.delay * 2, 30000);
      this.timer = setTimeout(() => this.start(), wait);
    });
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.socket?.close();
  }

  /** Narrow the stream to the page's filters. */
  setFilter(filter) {
    this.filter = filter;
    this.send();
  }

  send() {
    if (this.socket?.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify({ filter: this.filter }));
    }
  }

  receive(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (frame.type === "events" && Array.isArray(frame.events)) this.onEvents(frame.events);
    else if (frame.type === "event" && frame.event) this.onEvents([frame.event]);
    else if (frame.type === "alert") this.onAlert(frame);
  }
}
