// Burn Rate Gauge: USD per hour (GET /api/stats/burn) on a dial whose green / amber /
// red zones come from the budgets that apply, today's and the month's projections
// beside it, and the last three hours per minute as a sparkline.
import * as d3 from "../../vendor/d3.js";
import * as api from "../api.js";
import { isoDateIn, money, rate, shortDateTime, zonedMidnight } from "../format.js";
import { nextDay } from "../state.js";
import { chart, legend, motion } from "../panel.js";

const WARN = 0.8; // the server's default budget_warn_ratio (not in the burn answer)
let lastAngle = null;

export default {
  id: "gauge",
  title: "How fast are we burning?",
  holdOnHover: false, // numbers change in place: nothing moves under the pointer
  async fetch(ctx) {
    return api.get("/api/stats/burn", { ...ctx.dims, hours: 3 });
  },
  render(body, burn, ctx) {
    body.replaceChildren();
    const now = burn.usd_per_hour_1h;
    const paces = budgetPaces(burn, ctx.tz);
    const budgetRate = paces?.budget ?? null;
    const max = niceMax(Math.max(now, burn.usd_per_hour_15m, burn.usd_per_hour_24h, budgetRate ? budgetRate * 1.25 : 0) * 1.1 || 1);
    const width = Math.min(280, ctx.width);
    const height = width / 2 + 44;
    const r = width / 2 - 30;
    const cx = width / 2;
    const cy = height - 30;
    const angle = d3.scaleLinear().domain([0, max]).range([-Math.PI / 2, Math.PI / 2]).clamp(true);
    const zone = burn.zone;
    const label = `Burn rate gauge: ${rate(now)} over the last hour (15 minutes: ${rate(burn.usd_per_hour_15m)}), zone ${zone}${budgetRate != null ? `, budget reached at ${rate(budgetRate)}` : ", no budget set"}.`;
    const svg = chart(body, { width, height, label, className: "gauge" });
    const g = svg.append("g").attr("transform", `translate(${cx},${cy})`).attr("aria-hidden", "true");
    const arc = d3.arc().innerRadius(r * 0.72).outerRadius(r);
    const zones = paces
      ? [
          { from: 0, to: paces.warn, cls: "green" },
          { from: paces.warn, to: budgetRate, cls: "yellow" },
          { from: budgetRate, to: max, cls: "red" },
        ]
      : [{ from: 0, to: max, cls: "neutral" }];
    g.selectAll("path.zone").data(zones).join("path")
      .attr("class", (d) => `zone ${d.cls}`)
      .attr("d", (d) => arc({ startAngle: angle(d.from), endAngle: angle(Math.min(d.to, max)) }));
    for (const tick of d3.scaleLinear().domain([0, max]).ticks(4)) {
      const a = angle(tick) - Math.PI / 2;
      g.append("text").attr("class", "tick-label")
        .attr("x", Math.cos(a) * (r + 10)).attr("y", Math.sin(a) * (r + 10))
        .attr("text-anchor", tick === 0 ? "end" : tick >= max ? "start" : "middle")
        .text(`$${d3.format("~s")(tick)}`);
    }
    const target = angle(now) * (180 / Math.PI);
    const needle = g.append("g").attr("class", "needle").attr("data-usd-per-hour", now);
    needle.append("line").attr("x1", 0).attr("y1", 0).attr("x2", 0).attr("y2", -r * 0.92);
    needle.append("circle").attr("r", 6);
    const from = lastAngle ?? -90;
    needle.attr("transform", `rotate(${from})`)
      .transition().duration(motion(700)).ease(d3.easeCubicOut)
      .attrTween("transform", () => (t) => `rotate(${from + (target - from) * t})`);
    lastAngle = target;
    g.append("text").attr("class", "gauge-value").attr("y", 26).attr("text-anchor", "middle").text(rate(now));

    const facts = d3.select(body).append("dl").attr("class", "facts");
    const fact = (k, v, attr) => {
      facts.append("dt").text(k);
      facts.append("dd").attr("data-fact", attr).text(v);
    };
    fact("Last 15 min", rate(burn.usd_per_hour_15m), "rate15");
    fact("Today", `${money(burn.today_usd)} → ${money(burn.projected_today_usd)}${burn.daily_budget_usd ? ` of ${money(burn.daily_budget_usd)}` : ""}`, "today");
    fact("Month", `${money(burn.month_usd)} → ${money(burn.projected_month_usd)}${burn.monthly_budget_usd ? ` of ${money(burn.monthly_budget_usd)}` : ""}`, "month");
    fact("Zone", zone, "zone");
    sparkline(body, burn.minutes, ctx);
    if (paces) {
      legend(body, [
        { key: "green", label: `under ${rate(paces.warn)}: within budget`, color: "var(--zone-green)" },
        { key: "yellow", label: `${Math.round(WARN * 100)} % of the budget by the end of the period`, color: "var(--zone-yellow)" },
        { key: "red", label: `over ${rate(budgetRate)}: budget exceeded at this pace`, color: "var(--zone-red)" },
      ]);
    }
    return `${rate(now)} over the last hour; today ${money(burn.today_usd)} heading for ${money(burn.projected_today_usd)}, the month for ${money(burn.projected_month_usd)}; zone ${zone}.`;
  },
};

/**
 * The burn rate ($/h) at which today's (or the month's) projection reaches its budget,
 * given what is spent already: the gauge's zones then agree with the server's `zone`
 * (projection >= budget: red; >= warn ratio: amber).
 */
function budgetPaces(burn, tz) {
  const now = Date.now();
  const today = isoDateIn(now, tz);
  const paces = [];
  if (burn.daily_budget_usd) {
    const hours = Math.max(1 / 60, (zonedMidnight(nextDay(today), tz) - now) / 3600e3);
    paces.push({ budget: burn.daily_budget_usd, spent: burn.today_usd, hours });
  }
  if (burn.monthly_budget_usd) {
    const first = `${today.slice(0, 7)}-01`;
    const next = new Date(`${first}T00:00:00Z`);
    next.setUTCMonth(next.getUTCMonth() + 1);
    const hours = Math.max(1 / 60, (zonedMidnight(next.toISOString().slice(0, 10), tz) - now) / 3600e3);
    paces.push({ budget: burn.monthly_budget_usd, spent: burn.month_usd, hours });
  }
  if (!paces.length) return null;
  const at = (share) => Math.max(0, Math.min(...paces.map((p) => (share * p.budget - p.spent) / p.hours)));
  return { warn: at(WARN), budget: at(1) };
}

function niceMax(value) {
  return d3.scaleLinear().domain([0, value]).nice(4).domain()[1];
}

function sparkline(body, minutes, ctx) {
  const width = ctx.width;
  const height = 56;
  const points = minutes.map((m) => ({ at: Date.parse(m.minute), usd: m.usd }));
  const total = d3.sum(points, (p) => p.usd);
  const busiest = d3.greatest(points, (p) => p.usd);
  const label = `Spend per minute over the last ${Math.round(points.length / 60)} hours: ${money(total)} in all${busiest && busiest.usd > 0 ? `, busiest minute ${shortDateTime(busiest.at, ctx.tz)} (${money(busiest.usd)})` : ""}.`;
  const svg = chart(body, { width, height, label, className: "sparkline" });
  const x = d3.scaleTime().domain(d3.extent(points, (p) => p.at)).range([2, width - 2]);
  const y = d3.scaleLinear().domain([0, d3.max(points, (p) => p.usd) || 1]).range([height - 2, 4]);
  svg.append("path").attr("class", "spark-area").attr("aria-hidden", "true")
    .attr("d", d3.area().x((p) => x(p.at)).y0(height - 2).y1((p) => y(p.usd))(points));
  svg.append("path").attr("class", "spark-line").attr("aria-hidden", "true")
    .attr("d", d3.line().x((p) => x(p.at)).y((p) => y(p.usd))(points));
}
