// Status badge: store health, events stored, write-ahead backlog and the last import
// (GET /health, GET /api/import/status); amber or red when something needs attention.
import * as d3 from "../../vendor/d3.js";
import * as api from "../api.js";
import { count, duration } from "../format.js";

const BACKLOG_WARN = 200000;

export default {
  id: "status",
  title: "Is the service healthy?",
  holdOnHover: false, // numbers change in place: nothing moves under the pointer
  async fetch() {
    const [health, imports] = await Promise.all([
      api.get("/health"),
      api.get("/api/import/status").catch(() => null),
    ]);
    return { health, imports };
  },
  render(body, { health, imports }) {
    const level = levelOf(health, imports);
    const text = level === "red" ? "attention" : level === "amber" ? "check" : "ok";
    const root = d3.select(body);
    const wasOpen = root.select("details").node()?.open ?? false;
    root.selectAll("*").remove();
    const details = root.append("details").attr("class", `status ${level}`).attr("data-level", level).property("open", wasOpen);
    const summary = details.append("summary");
    summary.append("span").attr("class", "dot").attr("aria-hidden", "true");
    summary.append("span").text(`${text} · ${count(health.event_count)} events`);
    const dl = details.append("dl").attr("class", "status-detail");
    const row = (k, v) => {
      dl.append("dt").text(k);
      dl.append("dd").text(v);
    };
    row("Store", `${health.status}${health.disk_ok ? "" : " (disk full: ingest refused)"}`);
    row("Events stored", count(health.event_count));
    row("Write-ahead backlog", `${count(health.wal_backlog_events)} events`);
    row("Files", `${count(health.files)} in ${health.partitions.length} months`);
    if (health.last_error) row("Last error", health.last_error);
    if (imports) row("Last import", importText(imports));
    row("Version", health.version);
    return `Service ${text}: ${health.status}, ${count(health.event_count)} events stored, ${count(health.wal_backlog_events)} waiting to be written${imports ? `; import ${imports.state}` : ""}.`;
  },
};

function levelOf(health, imports) {
  if (health.status !== "ok" || !health.disk_ok || imports?.state === "error") return "red";
  if (health.wal_backlog_events > BACKLOG_WARN || imports?.files_failed > 0 || imports?.bad_lines > 0) return "amber";
  return "green";
}

function importText(s) {
  if (s.state === "idle") return "none since the server started";
  const done = s.bytes_total ? ` ${Math.round((100 * s.bytes_done) / s.bytes_total)} %` : "";
  if (s.state === "running") return `running:${done}, ${count(s.files_done)} of ${count(s.files_total)} files`;
  if (s.state === "error") return `failed: ${s.error ?? "see the server log"}`;
  return `finished: ${count(s.accepted)} events, ${count(s.duplicates)} duplicates, ${count(s.bad_lines)} bad lines in ${duration(s.elapsed_s)}`;
}
