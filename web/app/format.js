// Numbers and times, through a few cached Intl formatters (DASHBOARD.md: money as
// $1,234.56, below $1 two significant digits, compact axes, rates per hour; times in the
// page's zone).
import * as d3 from "../vendor/d3.js";

const usd = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
const usdSmall = new Intl.NumberFormat("en-US", {
  style: "currency",
  currency: "USD",
  maximumSignificantDigits: 2,
});
const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });
const integer = new Intl.NumberFormat("en-US");
const axisBig = d3.format("$.2~s");
const axisSmall = d3.format("$,.2~f");

/** "$1,234.56"; "$0.0042" below a dollar; "$0.00" for nothing. */
export function money(value) {
  const v = Number(value) || 0;
  if (v !== 0 && Math.abs(v) < 1) return usdSmall.format(v);
  return usd.format(v);
}

/** Compact money for axes: "$1.2k", "$12", "$0.5". */
export function moneyAxis(value) {
  return Math.abs(value) >= 1000 ? axisBig(value).replace("G", "B") : axisSmall(value);
}

/** "$48.80/h". */
export function rate(value) {
  return `${money(value)}/h`;
}

/** Tokens and counts, compact: "1.2M". */
export function tokens(value) {
  return compact.format(Number(value) || 0);
}

/** Whole numbers with separators: "1,234,567". */
export function count(value) {
  return integer.format(Number(value) || 0);
}

const dateTimeCache = new Map();

function formatter(tz, options) {
  const key = `${tz}|${JSON.stringify(options)}`;
  let f = dateTimeCache.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat("en-GB", { timeZone: tz, ...options });
    dateTimeCache.set(key, f);
  }
  return f;
}

/** "23 Nov 2026, 14:02:11" in the zone. */
export function dateTime(value, tz) {
  return formatter(tz, {
    day: "numeric", month: "short", year: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  }).format(new Date(value));
}

/** "23 Nov 14:02" (with seconds: "23 Nov 14:02:11") in the zone. */
export function shortDateTime(value, tz, seconds = false) {
  return formatter(tz, {
    day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
    ...(seconds ? { second: "2-digit" } : {}),
  }).format(new Date(value));
}

/** "23 Nov 2026" for a YYYY-MM-DD day (a calendar date, not an instant). */
export function day(isoDate) {
  return formatter("UTC", { day: "numeric", month: "short", year: "numeric" }).format(
    new Date(`${isoDate}T00:00:00Z`),
  );
}

/** Axis label formatters for instants in the zone, by tick step. */
export const ticks = {
  time: (tz) => fmt(tz, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" }),
  dayTime: (tz) => fmt(tz, { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23" }),
  day: (tz) => fmt(tz, { day: "numeric", month: "short" }),
  month: (tz) => fmt(tz, { month: "short", year: "numeric" }),
};

function fmt(tz, options) {
  const f = formatter(tz, options);
  return (d) => f.format(d);
}

/** "12 s ago", "3 min ago", "2 h ago", "4 d ago". */
export function ago(value, now = Date.now()) {
  const s = Math.max(0, Math.round((now - new Date(value).getTime()) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** "3 h 20 min" for a span in seconds. */
export function duration(seconds) {
  const s = Math.round(seconds || 0);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 86400) {
    const minutes = Math.round((s % 3600) / 60);
    return minutes ? `${Math.floor(s / 3600)} h ${minutes} min` : `${Math.floor(s / 3600)} h`;
  }
  return `${(s / 86400).toFixed(1)} d`;
}

/** Minutes east of UTC of `tz` at an instant. */
export function tzOffsetMinutes(instant, tz) {
  const parts = formatter(tz, {
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  }).formatToParts(new Date(instant));
  const get = (type) => Number(parts.find((p) => p.type === type).value);
  const asUtc = Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute"), get("second"));
  return Math.round((asUtc - Math.floor(new Date(instant).getTime() / 1000) * 1000) / 60000);
}

/** The instant (ms) local midnight of a YYYY-MM-DD day begins in `tz`. */
export function zonedMidnight(isoDate, tz) {
  const guess = Date.parse(`${isoDate}T00:00:00Z`);
  let instant = guess - tzOffsetMinutes(guess, tz) * 60000;
  instant = guess - tzOffsetMinutes(instant, tz) * 60000;
  return instant;
}

/** Today's date (YYYY-MM-DD) in `tz`. */
export function todayIn(tz, now = Date.now()) {
  return formatter(tz, { year: "numeric", month: "2-digit", day: "2-digit" })
    .formatToParts(new Date(now))
    .filter((p) => p.type !== "literal")
    .reduce((acc, p) => ({ ...acc, [p.type]: p.value }), {});
}

/** YYYY-MM-DD of an instant in `tz`. */
export function isoDateIn(instant, tz) {
  const p = todayIn(tz, instant);
  return `${p.year}-${p.month}-${p.day}`;
}
