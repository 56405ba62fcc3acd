// Cost River: cost over time stacked by role (or rig, model); hourly buckets up to a week
// (GET /api/stats/hourly), daily beyond (GET /api/stats/daily) in the page's zone.
// Budget alerts from the live stream are vertical marks; dragging selects a range.
import * as d3 from "../../vendor/d3.js";
import * as api from "../api.js";
import { colorOf } from "../colors.js";
import { money, moneyAxis, shortDateTime, ticks, zonedMidnight } from "../format.js";
import { axisGroup, chart, emptyNote, legend, timeAxis } from "../panel.js";

const HOURLY_UP_TO = 7 * 86400e3;
const HOUR = 3600e3;

export default {
  id: "river",
  title: "Where did the money go, over time?",
  async fetch(ctx) {
    const hourly = ctx.win.end - ctx.win.start <= HOURLY_UP_TO;
    const params = { ...ctx.params, group_by: ctx.state.by };
    if (hourly) {
      const from = Math.floor(ctx.win.start / HOUR) * HOUR;
      const to = Math.ceil((ctx.win.end + 1) / HOUR) * HOUR;
      params.from = new Date(from).toISOString();
      params.to = new Date(to).toISOString();
      const body = await api.get("/api/stats/hourly", params);
      return { hourly, rows: body.hours.map((r) => ({ at: Date.parse(r.hour), key: r[ctx.state.by], usd: r.total_usd })) };
    }
    const body = await api.get("/api/stats/daily", params);
    return { hourly, rows: body.days.map((r) => ({ at: zonedMidnight(r.date, ctx.tz), key: r[ctx.state.by], usd: r.total_usd })) };
  },
  render(body, data, ctx) {
    body.replaceChildren();
    const by = ctx.state.by;
    toggle(body, ctx);
    stepper(body, ctx);
    if (!data.rows.length) {
      emptyNote(body, "No spend in this range.");
      return "No spend in this range.";
    }
    const totals = d3.rollup(data.rows, (v) => d3.sum(v, (d) => d.usd), (d) => d.key);
    const keys = [...totals.keys()].sort((a, b) => totals.get(b) - totals.get(a));
    const step = data.hourly ? HOUR : 86400e3;
    const start = data.hourly ? Math.floor(ctx.win.start / HOUR) * HOUR : d3.min(data.rows, (d) => d.at);
    const last = Math.max(d3.max(data.rows, (d) => d.at), data.hourly ? Math.floor(ctx.win.end / HOUR) * HOUR : 0);
    const byTime = d3.group(data.rows, (d) => d.at);
    const series = [];
    const bucket = (at, rows) => {
      const row = { at };
      for (const key of keys) row[key] = 0;
      for (const r of rows ?? []) row[r.key] += r.usd;
      return row;
    };
    if (data.hourly) {
      // Every hour of the range, spent or not, so the river runs to zero between bursts.
      for (let t = start; t <= last; t += step) series.push(bucket(t, byTime.get(t)));
    } else {
      // Days vary in length (DST): each day sits at its own local midnight.
      for (const [at, rows] of [...byTime].sort((a, b) => a[0] - b[0])) series.push(bucket(at, rows));
    }
    const width = ctx.width;
    const height = 260;
    const m = { top: 12, right: 16, bottom: 26, left: 56 };
    const total = d3.sum(data.rows, (d) => d.usd);
    const peak = d3.greatest(series, (d) => d3.sum(keys, (k) => d[k]));
    const label = `Cost River: ${money(total)} over the range by ${by}, ${data.hourly ? "per hour" : "per day"}; largest ${keys[0]} (${money(totals.get(keys[0]))}).`;
    const svg = chart(body, { width, height, label });
    const x = d3.scaleTime().domain([series[0].at, series.at(-1).at]).range([m.left, width - m.right]);
    if (series.length === 1) x.domain([series[0].at - step / 2, series[0].at + step / 2]);
    const stack = d3.stack().keys(keys)(series);
    const y = d3.scaleLinear().domain([0, d3.max(stack.at(-1), (d) => d[1]) || 1]).nice().range([height - m.bottom, m.top]);
    const area = d3.area().curve(d3.curveMonotoneX).x((d) => x(d.data.at)).y0((d) => y(d[0])).y1((d) => y(d[1]));
    axisGroup(svg, `translate(0,${height - m.bottom})`).call(timeAxis(x, ctx.tz, width, ticks));
    axisGroup(svg, `translate(${m.left},0)`).call(d3.axisLeft(y).ticks(5).tickFormat(moneyAxis)).call((g) => g.selectAll(".tick line").clone().attr("class", "grid").attr("x2", width - m.left - m.right));
    svg.append("g").attr("class", "layers").attr("aria-hidden", "true")
      .selectAll("path").data(stack, (d) => d.key).join("path")
      .attr("class", "layer").attr("data-key", (d) => d.key)
      .attr("fill", (d) => colorOf(by, d.key)).attr("d", area)
      .append("title").text((d) => `${d.key}: ${money(totals.get(d.key))}`);
    // Hover: a rule and a tooltip with the bucket's breakdown (over the brush too).
    const rule = svg.append("line").attr("class", "hover-rule").attr("aria-hidden", "true").attr("y1", m.top).attr("y2", height - m.bottom).attr("visibility", "hidden");
    const tip = d3.select(body).append("div").attr("class", "tooltip").attr("aria-hidden", "true").style("visibility", "hidden");
    const nearest = d3.bisector((d) => d.at).center;
    svg.on("pointermove", (event) => {
      const [px] = d3.pointer(event, svg.node());
      const d = series[nearest(series, x.invert(px))];
      if (!d) return;
      rule.attr("x1", x(d.at)).attr("x2", x(d.at)).attr("visibility", "visible");
      const lines = keys.filter((k) => d[k] > 0).map((k) => `${k}: ${money(d[k])}`);
      tip.text([`${shortDateTime(d.at, ctx.tz)} · ${money(d3.sum(keys, (k) => d[k]))}`, ...lines].join("\n"))
        .style("left", `${(x(d.at) / width) * 100}%`)
        .style("transform", x(d.at) > width * 0.7 ? "translateX(calc(-100% - 12px))" : "translateX(12px)")
        .style("visibility", "visible");
    }).on("pointerleave", () => {
      rule.attr("visibility", "hidden");
      tip.style("visibility", "hidden");
    });
    const [lo, hi] = x.domain().map(Number);
    const inRange = ctx.alerts.filter((a) => Date.parse(a.at) >= lo && Date.parse(a.at) <= hi + step);
    const marks = svg.append("g").attr("class", "alerts").attr("aria-hidden", "true")
      .selectAll("g").data(inRange).join("g")
      .attr("class", (d) => `alert ${d.level}`)
      .attr("transform", (d) => `translate(${Math.min(width - m.right, x(Date.parse(d.at)))},0)`);
    marks.append("line").attr("y1", m.top).attr("y2", height - m.bottom);
    marks.append("title").text((d) => `Budget ${d.level}: ${d.scope} ${d.name ?? ""} ${d.period} ${money(d.spent_usd)} of ${money(d.budget_usd)}`);
    const brush = d3.brushX().extent([[m.left, m.top], [width - m.right, height - m.bottom]])
      .on("start", () => ctx.busy(true))
      .on("end", (event) => {
        ctx.busy(false);
        if (!event.sourceEvent || !event.selection) return;
        const [a, b] = event.selection.map((px) => x.invert(px));
        if (b - a < 60e3) return;
        ctx.choose({ from: a.toISOString(), to: b.toISOString() });
      });
    svg.append("g").attr("class", "brush").attr("aria-hidden", "true").call(brush);
    legend(body, keys.map((k) => ({ key: k, label: `${k} ${money(totals.get(k))}`, color: colorOf(by, k) })), by === "model" ? null : (key) => ctx.choose({ [by]: key }));
    const peakText = peak ? ` Busiest ${data.hourly ? "hour" : "day"}: ${shortDateTime(peak.at, ctx.tz)} at ${money(d3.sum(keys, (k) => peak[k]))}.` : "";
    return `${money(total)} in this range by ${by}: ${keys.slice(0, 3).map((k) => `${k} ${money(totals.get(k))}`).join(", ")}${keys.length > 3 ? ", …" : ""}.${peakText}${inRange.length ? ` ${inRange.length} budget alert(s).` : ""}`;
  },
};

/** Keyboard-friendly range moves (the brush needs a pointer): earlier, zoom, later. */
function stepper(body, ctx) {
  // Each move reads the state's window when clicked, not when the river was drawn.
  const move = (f) => () => {
    const { start, end } = ctx.currentWindow();
    const [a, b] = f(start, end, end - start, (start + end) / 2);
    ctx.choose({ from: new Date(a).toISOString(), to: new Date(Math.min(b, Date.now() + 3600e3)).toISOString() });
  };
  const moves = [
    { key: "earlier", label: "◀", title: "Earlier", go: move((a, b, span) => [a - span / 2, b - span / 2]) },
    { key: "zoom-in", label: "+", title: "Zoom in (half the range)", go: move((a, b, span, mid) => [mid - span / 4, mid + span / 4]) },
    { key: "zoom-out", label: "−", title: "Zoom out (twice the range)", go: move((a, b, span, mid) => [mid - span, mid + span]) },
    { key: "later", label: "▶", title: "Later", go: move((a, b, span) => [a + span / 2, b + span / 2]) },
  ];
  d3.select(body).select(".toggle-bar").append("div").attr("class", "toggle").attr("role", "group").attr("aria-label", "Move the range")
    .selectAll("button").data(moves).join("button")
    .attr("type", "button").attr("data-move", (d) => d.key).attr("title", (d) => d.title).attr("aria-label", (d) => d.title)
    .text((d) => d.label).on("click", (_, d) => d.go());
}

function toggle(body, ctx) {
  const bar = d3.select(body).append("div").attr("class", "toggle-bar");
  const group = bar.append("div").attr("class", "toggle").attr("role", "group").attr("aria-label", "Group the river by");
  group.selectAll("button").data(["role", "rig", "model"]).join("button")
    .attr("type", "button").attr("aria-pressed", (d) => String(d === ctx.state.by)).text((d) => d)
    .on("click", (_, d) => ctx.choose({ by: d }));
}
