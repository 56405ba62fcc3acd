// Live feed: the latest events, newest first, arrivals from /ws/live highlighted
// briefly (no layout shift); relative times with the exact time as a tooltip.
import * as d3 from "../../vendor/d3.js";
import * as api from "../api.js";
import { roleColor } from "../colors.js";
import { ago, dateTime, money, tokens } from "../format.js";

const KEEP = 40;
let items = [];

/** Key of an event row: its stored row id, else its identity. */
function keyOf(e) {
  return e.id != null ? `id:${e.id}` : `${e.event_id ?? e.session_id}:${e.ended_at}:${e.revision ?? 0}`;
}

export default {
  id: "feed",
  title: "What is happening now?",
  async fetch(ctx) {
    // The newest events whatever the range; while the range ends now this is the events
    // list's first page, the very same request (shared).
    const params = ctx.state.range ? ctx.params : ctx.dims;
    const page = await api.get("/api/costs", { ...params, limit: 25 });
    return page.events.slice(0, 15);
  },
  render(body, events, ctx) {
    items = events.map((e) => ({ ...e, fresh: false }));
    return draw(body, ctx);
  },
  /** Live arrivals (already filtered by the page): prepend, keep the newest KEEP. */
  push(body, events, ctx) {
    const known = new Set(items.map(keyOf));
    const fresh = events.filter((e) => !known.has(keyOf(e))).map((e) => ({ ...e, fresh: true }));
    items = [...fresh.reverse(), ...items.map((e) => ({ ...e, fresh: false }))]
      .sort((a, b) => Date.parse(b.ended_at) - Date.parse(a.ended_at))
      .slice(0, KEEP);
    return draw(body, ctx);
  },
  tick(body) {
    d3.select(body).selectAll("time").text((d) => ago(d.ended_at));
  },
};

function draw(body, ctx) {
  const list = d3.select(body).selectAll("ol.feed").data([0]).join("ol").attr("class", "feed").attr("tabindex", 0).attr("aria-label", "Latest events, newest first").attr("aria-live", "polite").attr("aria-relevant", "additions");
  const row = list.selectAll("li").data(items, keyOf).join((enter) => {
    const li = enter.append("li");
    li.append("time");
    li.append("span").attr("class", "role-chip");
    li.append("span").attr("class", "who");
    li.append("span").attr("class", "what");
    li.append("span").attr("class", "cost");
    return li;
  });
  row.order();
  row.classed("fresh", (d) => d.fresh).attr("data-event", (d) => d.event_id ?? "");
  row.select("time").attr("datetime", (d) => d.ended_at).attr("title", (d) => dateTime(d.ended_at, ctx.tz)).text((d) => ago(d.ended_at));
  row.select(".role-chip").style("--chip", (d) => roleColor(d.role)).text((d) => d.role ?? "unknown");
  row.select(".who").text((d) => `${d.rig ?? ""}/${d.worker ?? ""} · ${d.session_id}`);
  row.select(".what").text((d) => `${d.model ?? "unknown model"} · ${tokens((d.input_tokens ?? 0) + (d.cache_read_tokens ?? 0) + (d.cache_creation_tokens ?? 0))} in / ${tokens(d.output_tokens ?? 0)} out${d.issue ? ` · ${d.issue}` : ""}`);
  row.select(".cost").text((d) => money(d.cost_usd));
  if (!items.length) {
    d3.select(body).selectAll("p.empty-note").data([0]).join("p").attr("class", "empty-note").text("Waiting for events…");
  } else {
    d3.select(body).selectAll("p.empty-note").remove();
  }
  return items.length ? `Latest: ${items[0].role ?? "unknown"} ${items[0].session_id} spent ${money(items[0].cost_usd)} ${ago(items[0].ended_at)}.` : "No events yet.";
}
