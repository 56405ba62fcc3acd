// Headline tiles: today, this week, this month (GET /api/stats/summary), the burn rate
// and the month's projection against its budget (summary + GET /api/stats/burn).
import * as d3 from "../../vendor/d3.js";
import * as api from "../api.js";
import { count, money, rate } from "../format.js";

export default {
  id: "tiles",
  title: "What are we spending?",
  holdOnHover: false, // numbers change in place: nothing moves under the pointer
  async fetch(ctx) {
    const dims = ctx.dims;
    const [summary, burn] = await Promise.all([
      api.get("/api/stats/summary", dims),
      api.get("/api/stats/burn", { ...dims, hours: 3 }), // the gauge's request, shared
    ]);
    return { summary, burn };
  },
  render(body, { summary, burn }) {
    const budget = burn.monthly_budget_usd;
    const tiles = [
      { key: "today", label: "Today", usd: summary.today.total_usd, note: `${count(summary.today.session_count)} sessions` },
      { key: "week", label: "This week", usd: summary.week.total_usd, note: `${count(summary.week.session_count)} sessions` },
      { key: "month", label: "This month", usd: summary.month.total_usd, note: `${count(summary.month.session_count)} sessions` },
      { key: "burn", label: "Burn rate", usd: summary.burn_rate_usd_per_hour, text: rate(summary.burn_rate_usd_per_hour), note: "spent in the last hour" },
      {
        key: "projected",
        label: "Projected month",
        usd: summary.projected_month_usd,
        note: budget
          ? `budget ${money(budget)} · ${Math.round((100 * summary.projected_month_usd) / budget)} %`
          : burn.daily_budget_usd ? `zone ${burn.zone} against the daily budget` : "no budget set",
        zone: burn.zone,
      },
    ];
    const root = d3.select(body).selectAll("dl.tiles").data([0]).join("dl").attr("class", "tiles");
    const tile = root.selectAll("div.tile").data(tiles, (d) => d.key).join((enter) => {
      const div = enter.append("div").attr("class", "tile");
      div.append("dt");
      div.append("dd").attr("class", "value");
      div.append("dd").attr("class", "note");
      return div;
    });
    tile.attr("data-tile", (d) => d.key).attr("data-usd", (d) => d.usd).attr("data-zone", (d) => d.zone ?? null);
    tile.select("dt").text((d) => d.label);
    tile.select("dd.value").text((d) => d.text ?? money(d.usd));
    tile.select("dd.note").text((d) => d.note);
    return `Today ${money(summary.today.total_usd)}, this week ${money(summary.week.total_usd)}, this month ${money(summary.month.total_usd)}, burning ${rate(summary.burn_rate_usd_per_hour)}, month projected at ${money(summary.projected_month_usd)}.`;
  },
};
