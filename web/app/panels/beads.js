// Cost per Bead: each bead's span of activity against its cost (GET /api/stats/issues),
// dot size by sessions, colour by the bead's prefix (its rig). Clicking filters to it.
import * as d3 from "../../vendor/d3.js";
import * as api from "../api.js";
import { nameColor } from "../colors.js";
import { count, duration, money, moneyAxis } from "../format.js";
import { axisGroup, chart, emptyNote, legend } from "../panel.js";

const SPANS = [1 / 60, 5 / 60, 0.25, 1, 3, 12, 24, 72, 168, 720, 2160];
const DOLLARS = [0.001, 0.01, 0.1, 1, 10, 100, 1000, 10000, 100000];

export default {
  id: "beads",
  title: "Which beads cost the most?",
  async fetch(ctx) {
    return api.get("/api/stats/issues", { ...ctx.params, limit: 300 });
  },
  render(body, data, ctx) {
    body.replaceChildren();
    const beads = data.issues.filter((b) => b.issue).map((b) => ({ ...b, prefix: b.issue.split("-")[0], hours: Math.max(b.duration_s / 3600, 1 / 60) }));
    if (!beads.length) {
      emptyNote(body, "No beads in this range.");
      return "No beads in this range.";
    }
    const width = ctx.width;
    const height = 280;
    const m = { top: 10, right: 16, bottom: 34, left: 56 };
    const x = d3.scaleLog().domain(d3.extent(beads, (b) => b.hours)).nice().range([m.left, width - m.right]);
    const y = d3.scaleLog().domain(d3.extent(beads, (b) => Math.max(b.total_usd, 0.001))).nice().range([height - m.bottom, m.top]);
    const r = d3.scaleSqrt().domain([0, d3.max(beads, (b) => b.session_count)]).range([2, 14]);
    const top = beads[0];
    const summary = `${count(beads.length)} beads; costliest ${top.issue} at ${money(top.total_usd)} over ${duration(top.duration_s)} (${count(top.session_count)} sessions).`;
    const svg = chart(body, { width, height, label: `Cost per bead: ${summary}` });
    const within = (scale, values) => values.filter((v) => v >= scale.domain()[0] && v <= scale.domain()[1]);
    axisGroup(svg, `translate(0,${height - m.bottom})`).call(d3.axisBottom(x).tickValues(within(x, SPANS)).tickFormat((h) => duration(h * 3600)));
    axisGroup(svg, `translate(${m.left},0)`).call(d3.axisLeft(y).tickValues(within(y, DOLLARS)).tickFormat(moneyAxis));
    svg.append("text").attr("class", "axis-title").attr("aria-hidden", "true").attr("x", width - m.right).attr("y", height - 4).attr("text-anchor", "end").text("active span →");
    svg.append("g").attr("class", "dots").attr("aria-hidden", "true")
      .selectAll("circle").data(beads, (b) => b.issue).join("circle")
      .attr("class", (b) => `bead${b.issue === ctx.state.bead ? " selected" : ""}`)
      .attr("data-bead", (b) => b.issue)
      .attr("cx", (b) => x(b.hours)).attr("cy", (b) => y(Math.max(b.total_usd, 0.001))).attr("r", (b) => r(b.session_count))
      .attr("fill", (b) => nameColor(b.prefix))
      .on("click", (_, b) => ctx.choose({ bead: b.issue }))
      .append("title").text((b) => `${b.issue}: ${money(b.total_usd)}, ${count(b.session_count)} sessions, ${duration(b.duration_s)}${b.usd_per_hour ? `, ${money(b.usd_per_hour)}/h` : ""}`);
    const prefixes = [...new Set(beads.map((b) => b.prefix))].slice(0, 10);
    legend(body, prefixes.map((p) => ({ key: p, label: `${p}-…`, color: nameColor(p) })));
    return summary;
  },
};
