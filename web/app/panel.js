// What every panel shares. A panel module exports
//   { id, title, fetch(ctx) -> Promise<data>, render(body, data, ctx) -> summary text }
// where ctx = { state, window, api params, width, choose(patch), tz, alerts }. The page
// owns the frame (title, summary line, chart area), fetching, sizing and the state: a
// panel reports a user's choice by ctx.choose(patch), which sets the frame's `.value`
// and fires a bubbling "input" event.
import * as d3 from "../vendor/d3.js";

export const reducedMotion = matchMedia("(prefers-reduced-motion: reduce)");

/** A transition duration: none when the user asked for less motion. */
export function motion(ms) {
  return reducedMotion.matches ? 0 : ms;
}

/** An <svg role="img"> sized by viewBox, labelled for screen readers. */
export function chart(body, { width, height, label, className = "" }) {
  const svg = d3
    .select(body)
    .append("svg")
    .attr("class", `chart ${className}`)
    .attr("role", "img")
    .attr("aria-label", label)
    .attr("viewBox", `0 0 ${width} ${height}`)
    .attr("width", width)
    .attr("height", height);
  return svg;
}

/** A group d3-axis can draw into, hidden from assistive technology. */
export function axisGroup(svg, transform) {
  return svg.append("g").attr("class", "axis").attr("aria-hidden", "true").attr("transform", transform);
}

/** An empty-state line inside a panel. */
export function emptyNote(body, text) {
  d3.select(body).append("p").attr("class", "empty-note").text(text);
}

/** A legend of swatches; clicking an item calls onPick(key) when given. */
export function legend(body, items, onPick) {
  const list = d3.select(body).append("ul").attr("class", "legend").attr("aria-label", "Legend");
  const item = list.selectAll("li").data(items).join("li");
  const target = onPick
    ? item.append("button").attr("type", "button").attr("class", "legend-item").on("click", (_, d) => onPick(d.key))
    : item.append("span").attr("class", "legend-item");
  target.append("span").attr("class", "swatch").attr("aria-hidden", "true").style("background", (d) => d.color);
  target.append("span").text((d) => d.label);
  return list;
}

/** A bottom time axis whose labels suit the tick step, in the page's zone. */
export function timeAxis(x, tz, width, fmt) {
  const ticks = x.ticks(Math.max(2, Math.floor(width / 120)));
  const step = ticks.length > 1 ? ticks[1] - ticks[0] : 86400e3;
  const span = x.domain()[1] - x.domain()[0];
  const label = step >= 27 * 86400e3 ? fmt.month(tz) : step >= 86400e3 ? fmt.day(tz) : span <= 86400e3 ? fmt.time(tz) : fmt.dayTime(tz);
  return d3.axisBottom(x).tickValues(ticks).tickFormat(label);
}
