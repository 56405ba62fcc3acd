// Events for the current filters, newest first, paged with the API's cursor
// (GET /api/costs): the raw rows behind every chart.
import * as d3 from "../../vendor/d3.js";
import * as api from "../api.js";
import { count, dateTime, money, shortDateTime, tokens } from "../format.js";

const PAGE = 25;
let cursors = [null];
let lastQuery = "";

export default {
  id: "events",
  title: "Which events are these?",
  pageIndex: () => cursors.length,
  async fetch(ctx) {
    const query = JSON.stringify(ctx.params);
    if (query !== lastQuery) {
      cursors = [null]; // a filter change invalidates the cursor
      lastQuery = query;
    }
    const page = await api.get("/api/costs", { ...ctx.params, limit: PAGE, cursor: cursors.at(-1) });
    return page;
  },
  render(body, page, ctx) {
    body.replaceChildren();
    const table = d3.select(body).append("div").attr("class", "table-wrap").attr("tabindex", 0).attr("role", "region").attr("aria-label", "Events table").append("table").attr("class", "events");
    table.append("caption").attr("class", "visually-hidden").text("Events for the current filters, newest first");
    const cols = [
      ["Time", (e) => shortDateTime(e.ended_at, ctx.tz, true)],
      ["Role", (e) => e.role],
      ["Rig / worker", (e) => `${e.rig}/${e.worker}`],
      ["Session", (e) => e.session_id],
      ["Bead", (e) => e.issue ?? "—"],
      ["Model", (e) => (e.model ?? "—").replace(/^claude-/, "").replace(/-\d{8}$/, "")],
      ["Tokens in/out", (e) => `${tokens(e.input_tokens + e.cache_read_tokens + e.cache_creation_tokens)} / ${tokens(e.output_tokens)}`],
      ["Cost", (e) => money(e.cost_usd)],
    ];
    table.append("thead").append("tr").selectAll("th").data(cols).join("th").attr("scope", "col").text((c) => c[0]);
    table.append("tbody").selectAll("tr").data(page.events, (e) => e.id).join("tr")
      .selectAll("td").data((e) => cols.map((c) => c[1](e))).join("td").text((v) => v);
    const pager = d3.select(body).append("nav").attr("class", "pager").attr("aria-label", "Event pages");
    pager.append("button").attr("type", "button").text("Newest").property("disabled", cursors.length === 1)
      .on("click", () => {
        cursors = [null];
        ctx.refresh();
      });
    pager.append("button").attr("type", "button").text("← Newer").property("disabled", cursors.length === 1)
      .on("click", () => {
        cursors.pop();
        ctx.refresh();
      });
    pager.append("span").attr("class", "page-no").text(`page ${cursors.length}`);
    pager.append("button").attr("type", "button").text("Older →").property("disabled", !page.next_cursor)
      .on("click", () => {
        cursors.push(page.next_cursor);
        ctx.refresh();
      });
    return page.events.length
      ? `Page ${cursors.length}: ${count(page.events.length)} events from ${dateTime(page.events[0].ended_at, ctx.tz)} back.`
      : "No events for these filters.";
  },
};
