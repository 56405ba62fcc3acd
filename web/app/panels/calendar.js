// Heat Calendar: a year of daily cost in the page's zone (GET /api/stats/calendar),
// GitHub-style weeks by weekday; clicking a day (or Enter on it) sets the range to it.
import * as d3 from "../../vendor/d3.js";
import * as api from "../api.js";
import { count, day, money } from "../format.js";
import { chart } from "../panel.js";

const DAYS = ["Mon", "", "Wed", "", "Fri", "", ""];

export default {
  id: "calendar",
  title: "Which days cost the most?",
  async fetch(ctx) {
    return api.get("/api/stats/calendar", ctx.dims);
  },
  render(body, data, ctx) {
    body.replaceChildren();
    const days = data.days.map((d) => ({ ...d, at: new Date(`${d.date}T00:00:00Z`) }));
    const first = days[0].at;
    const week = (d) => d3.utcMonday.count(d3.utcMonday.floor(first), d.at);
    const weekday = (d) => (d.at.getUTCDay() + 6) % 7;
    const weeks = week(days.at(-1)) + 1;
    const left = 28;
    const top = 16;
    const cell = Math.max(8, Math.min(16, Math.floor((ctx.width - left - 4) / weeks)));
    const width = left + weeks * cell + 4;
    const height = top + 7 * cell + 4;
    const spent = days.filter((d) => d.total_usd > 0);
    const total = d3.sum(days, (d) => d.total_usd);
    const best = d3.greatest(days, (d) => d.total_usd);
    const selected = ctx.state.from && ctx.state.from === ctx.state.to ? ctx.state.from : null;
    const summary = spent.length
      ? `${money(total)} over ${spent.length} days with spend in the last ${days.length}; costliest ${day(best.date)} at ${money(best.total_usd)}.`
      : `No spend in the last ${days.length} days.`;
    const svg = chart(body, { width, height, label: `Heat calendar: ${summary}`, className: "calendar" });
    svg.append("g").attr("aria-hidden", "true").selectAll("text").data(DAYS).join("text")
      .attr("class", "tick-label").attr("x", left - 4).attr("y", (_, i) => top + i * cell + cell * 0.75)
      .attr("text-anchor", "end").text((d) => d);
    const months = days.filter((d) => d.at.getUTCDate() === 1);
    svg.append("g").attr("aria-hidden", "true").selectAll("text").data(months).join("text")
      .attr("class", "tick-label").attr("x", (d) => left + week(d) * cell).attr("y", top - 5)
      .text((d) => d3.utcFormat("%b")(d.at));
    svg.append("g").attr("class", "days").attr("aria-hidden", "true")
      .selectAll("rect").data(days, (d) => d.date).join("rect")
      .attr("class", (d) => `day level-${d.level}${d.date === selected ? " selected" : ""}`)
      .attr("data-date", (d) => d.date)
      .attr("x", (d) => left + week(d) * cell).attr("y", (d) => top + weekday(d) * cell)
      .attr("width", cell - 2).attr("height", cell - 2).attr("rx", 2)
      .on("click", (_, d) => ctx.choose({ from: d.date, to: d.date }))
      .append("title").text((d) => `${day(d.date)}: ${money(d.total_usd)}, ${count(d.session_count)} sessions`);
    const scale = d3.select(body).append("p").attr("class", "heat-scale").attr("aria-hidden", "true");
    scale.append("span").text("less");
    for (let level = 0; level <= 4; level++) scale.append("span").attr("class", `swatch level-${level}`);
    scale.append("span").text("more");
    // Keyboard: pick a day from a list (the chart itself is one image for screen readers).
    const pick = d3.select(body).append("label").attr("class", "day-pick");
    pick.append("span").text("Go to day ");
    pick.append("input").attr("type", "date").attr("min", days[0].date).attr("max", days.at(-1).date)
      .property("value", selected ?? "")
      .on("change", (event) => event.target.value && ctx.choose({ from: event.target.value, to: event.target.value }));
    return summary;
  },
};
