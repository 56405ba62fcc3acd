// Role Treemap: where the money went, role -> rig -> worker (GET /api/stats/treemap).
// Clicking a rectangle zooms in by setting that filter for the whole page; the
// breadcrumb zooms back out.
import * as d3 from "../../vendor/d3.js";
import * as api from "../api.js";
import { roleColor } from "../colors.js";
import { money } from "../format.js";
import { chart, emptyNote } from "../panel.js";

const LEVELS = ["role", "rig", "worker"];

export default {
  id: "treemap",
  title: "Who spent it?",
  async fetch(ctx) {
    return api.get("/api/stats/treemap", ctx.params);
  },
  render(body, tree, ctx) {
    body.replaceChildren();
    const root = d3.hierarchy(tree).sum((d) => d.value ?? 0);
    // Zoom: follow the page's role / rig / worker filters down the tree.
    let focus = root;
    const path = [];
    for (const level of LEVELS) {
      const want = ctx.state[level];
      if (!want) break;
      const child = focus.children?.find((c) => c.data.name === want);
      if (!child) break;
      focus = child;
      path.push(level);
    }
    crumbs(body, focus, path, ctx);
    if (!root.value) {
      emptyNote(body, "No spend in this range.");
      return "No spend in this range.";
    }
    const level = LEVELS[focus.depth] ?? null;
    const width = ctx.width;
    const height = 300;
    const node = focus.copy().sum((d) => d.value ?? 0).sort((a, b) => b.value - a.value);
    d3.treemap().size([width, height]).paddingInner(2).paddingTop((d) => (d.depth === 1 && d.children ? 16 : 0)).round(true)(node);
    const roleOf = (d) => (focus.depth === 0 ? d.ancestors().find((a) => a.depth === 1)?.data.name : focus.ancestors().find((a) => a.depth === 1).data.name);
    const top = node.children ?? [];
    const summary = `${money(focus.value)} ${focus.depth ? `for ${focus.data.name}` : "in all"}: ${top.slice(0, 3).map((c) => `${c.data.name} ${money(c.value)} (${Math.round((100 * c.value) / focus.value)} %)`).join(", ")}${top.length > 3 ? ", …" : ""}.`;
    const svg = chart(body, { width, height, label: `Treemap: ${summary}`, className: "treemap" });
    const cells = svg.append("g").attr("aria-hidden", "true")
      .selectAll("g").data(node.descendants().filter((d) => d.depth >= 1 && d.depth <= 2), (d) => d.ancestors().map((a) => a.data.name).join("/"))
      .join("g").attr("class", (d) => `cell depth-${d.depth}`)
      .attr("transform", (d) => `translate(${d.x0},${d.y0})`);
    cells.append("rect")
      .attr("width", (d) => Math.max(0, d.x1 - d.x0)).attr("height", (d) => Math.max(0, d.y1 - d.y0))
      .attr("fill", (d) => roleColor(roleOf(d)))
      .attr("fill-opacity", (d) => (d.depth === 1 ? 0.35 : 0.9))
      .attr("data-name", (d) => d.data.name)
      .on("click", (event, d) => {
        event.stopPropagation();
        if (!level) return;
        const next = LEVELS[focus.depth + 1];
        ctx.choose(d.depth === 1 ? { [level]: d.data.name } : { [level]: d.parent.data.name, [next]: d.data.name });
      })
      .append("title").text((d) => `${d.ancestors().reverse().slice(1).map((a) => a.data.name).join(" › ")}: ${money(d.value)}`);
    cells.filter((d) => d.x1 - d.x0 > 48 && (d.y1 - d.y0 > 14))
      .append("text").attr("class", "cell-label")
      .style("fill", (d) => (d.depth === 1 ? null : inkOn(roleColor(roleOf(d))))).attr("x", 4).attr("y", 12)
      .text((d) => truncate(`${d.data.name} ${money(d.value)}`, (d.x1 - d.x0 - 8) / 6.5));
    return summary;
  },
};

function crumbs(body, focus, path, ctx) {
  const nav = d3.select(body).append("nav").attr("class", "crumbs").attr("aria-label", "Treemap level");
  const chain = focus.ancestors().reverse();
  chain.forEach((node, i) => {
    if (i > 0) nav.append("span").attr("aria-hidden", "true").text(" › ");
    const label = i === 0 ? "All" : node.data.name;
    if (i === chain.length - 1) {
      nav.append("span").attr("aria-current", "true").text(label);
    } else {
      // Zoom out: drop the filters below this level.
      const patch = Object.fromEntries(path.slice(i).map((level) => [level, null]));
      nav.append("button").attr("type", "button").attr("class", "linkish").text(label).on("click", () => ctx.choose(patch));
    }
  });
}

/** Dark or light text, whichever reads on this fill. */
function inkOn(fill) {
  return d3.lab(fill).l > 62 ? "#111111" : "#ffffff";
}

function truncate(text, chars) {
  return text.length > chars ? `${text.slice(0, Math.max(1, Math.floor(chars) - 1))}…` : text;
}
