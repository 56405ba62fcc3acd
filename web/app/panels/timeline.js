// Session Flame Timeline: one bar per session on its lane (GET /api/stats/timeline),
// coloured by role, each subagent tied to its parent by a connector, the concurrency
// line above; the peak and the cost spent in parallel are stated. Drag to zoom.
import * as d3 from "../../vendor/d3.js";
import * as api from "../api.js";
import { roleColor } from "../colors.js";
import { count, duration, money, shortDateTime, ticks } from "../format.js";
import { axisGroup, chart, emptyNote, legend, timeAxis } from "../panel.js";

const LIMIT = 600;

export default {
  id: "timeline",
  title: "Who ran in parallel with whom?",
  async fetch(ctx) {
    const to = ctx.state.range ? new Date(Math.ceil((ctx.win.end + 1) / 3600e3) * 3600e3).toISOString() : ctx.params.to;
    return api.get("/api/stats/timeline", { ...ctx.params, to, limit: LIMIT });
  },
  render(body, data, ctx) {
    body.replaceChildren();
    const sessions = data.sessions.map((s) => ({ ...s, start: Date.parse(s.started_at), end: Date.parse(s.ended_at) }));
    const peakText = data.max_concurrency_at
      ? `peak ${data.max_concurrency} at once (${shortDateTime(data.max_concurrency_at, ctx.tz)})`
      : "no overlap";
    const summary = `${count(data.session_total)} sessions${data.truncated ? ` (the ${count(sessions.length)} costliest drawn)` : ""}, ${peakText}; ${money(data.parallel_usd)} spent while two or more ran.`;
    const stated = d3.select(body).append("p").attr("class", "stated");
    stated.append("span").attr("data-fact", "peak").text(`Peak: ${data.max_concurrency} sessions`);
    stated.append("span").attr("data-fact", "parallel").text(`In parallel: ${money(data.parallel_usd)}`);
    if (!sessions.length) {
      emptyNote(body, "No sessions in this range.");
      return summary;
    }
    const width = ctx.width;
    const m = { top: 8, right: 16, bottom: 24, left: 40 };
    const concH = 56;
    const laneH = Math.max(2, Math.min(12, Math.floor(300 / Math.max(1, data.lanes))));
    const height = m.top + concH + 8 + data.lanes * laneH + m.bottom;
    const start = Math.min(ctx.win.start, d3.min(sessions, (s) => s.start));
    const end = Math.max(d3.max(sessions, (s) => s.end), start + 60e3);
    const x = d3.scaleTime().domain([Math.max(start, ctx.win.start), Math.min(end, Math.max(ctx.win.end, end))]).range([m.left, width - m.right]).clamp(true);
    const svg = chart(body, { width, height, label: `Session flame timeline: ${summary}` });
    const conc = data.concurrency.map((p) => ({ at: Date.parse(p.at), n: p.sessions }));
    const yc = d3.scaleLinear().domain([0, Math.max(1, data.max_concurrency)]).range([m.top + concH, m.top]);
    svg.append("path").attr("class", "concurrency").attr("aria-hidden", "true")
      .attr("d", d3.area().curve(d3.curveStepAfter).x((p) => x(p.at)).y0(yc(0)).y1((p) => yc(p.n))(conc));
    axisGroup(svg, `translate(${m.left},0)`).call(d3.axisLeft(yc).ticks(2).tickFormat(d3.format("d")));
    const top = m.top + concH + 8;
    const y = (lane) => top + lane * laneH;
    axisGroup(svg, `translate(0,${height - m.bottom})`).call(timeAxis(x, ctx.tz, width, ticks));
    const byId = new Map(sessions.map((s) => [s.session_id, s]));
    const links = sessions.filter((s) => s.parent_session_id && byId.has(s.parent_session_id));
    svg.append("g").attr("class", "links").attr("aria-hidden", "true")
      .selectAll("path").data(links, (s) => s.session_id).join("path")
      .attr("class", "link")
      .attr("d", (s) => {
        const p = byId.get(s.parent_session_id);
        const x0 = x(s.start);
        return `M${x0},${y(p.lane) + laneH / 2}V${y(s.lane) + laneH / 2}h3`;
      });
    svg.append("g").attr("class", "sessions").attr("aria-hidden", "true")
      .selectAll("rect").data(sessions, (s) => s.session_id).join("rect")
      .attr("class", (s) => `session${s.parent_session_id ? " subagent" : ""}`)
      .attr("data-session", (s) => s.session_id)
      .attr("x", (s) => x(s.start)).attr("y", (s) => y(s.lane) + (s.parent_session_id ? laneH * 0.2 : 0))
      .attr("width", (s) => Math.max(1.5, x(s.end) - x(s.start)))
      .attr("height", (s) => Math.max(1, (s.parent_session_id ? laneH * 0.6 : laneH) - 1))
      .attr("fill", (s) => roleColor(s.role))
      .append("title").text((s) => `${s.session_id}${s.parent_session_id ? ` (subagent of ${s.parent_session_id})` : ""}\n${s.role} · ${s.rig} · ${s.worker}\n${shortDateTime(s.start, ctx.tz)}, ${duration((s.end - s.start) / 1000)}\n${money(s.total_usd)}, ${count(s.event_count)} events`);
    const brush = d3.brushX().extent([[m.left, m.top], [width - m.right, height - m.bottom]])
      .on("start", () => ctx.busy(true))
      .on("end", (event) => {
        ctx.busy(false);
        if (!event.sourceEvent || !event.selection) return;
        const [a, b] = event.selection.map((px) => x.invert(px));
        if (b - a < 60e3) return;
        ctx.choose({ from: a.toISOString(), to: b.toISOString() });
      });
    svg.insert("g", ".links").attr("class", "brush").attr("aria-hidden", "true").call(brush);
    const roles = d3.rollups(sessions, (v) => v.length, (s) => s.role).sort((a, b) => b[1] - a[1]);
    legend(body, [
      ...roles.map(([role, n]) => ({ key: role, label: `${role} (${n})`, color: roleColor(role) })),
      { key: "subagent", label: "thin bar: subagent, tied to its parent", color: "var(--muted)" },
    ]);
    return summary;
  },
};
