// One colour per role everywhere (Okabe-Ito, colour-blind safe), fixed by name; rigs,
// models and bead prefixes get their own fixed mapping by name (Tableau 10).
const ROLE_COLORS = {
  mayor: "#E69F00",
  deacon: "#56B4E9",
  witness: "#009E73",
  refinery: "#F0E442",
  polecat: "#0072B2",
  crew: "#D55E00",
  dog: "#CC79A7",
  boot: "#8C6D31",
  unknown: "#999999",
};
export const ROLES = Object.keys(ROLE_COLORS);

const OTHERS = [
  "#4E79A7", "#F28E2B", "#E15759", "#76B7B2", "#59A14F",
  "#EDC948", "#B07AA1", "#FF9DA7", "#9C755F", "#BAB0AC",
];

function hash(name) {
  let h = 2166136261;
  for (const ch of String(name)) h = Math.imul(h ^ ch.codePointAt(0), 16777619);
  return h >>> 0;
}

/** The colour of a role (grey for anything not a Gas Town role). */
export function roleColor(role) {
  return ROLE_COLORS[role] ?? ROLE_COLORS.unknown;
}

/** A fixed colour for a rig, model or bead prefix: by name, not by order of appearance. */
export function nameColor(name) {
  if (name == null || name === "unknown") return ROLE_COLORS.unknown;
  return OTHERS[hash(name) % OTHERS.length];
}

/** Colour of a key of a dimension ("role" uses the role palette). */
export function colorOf(dimension, key) {
  return dimension === "role" ? roleColor(key) : nameColor(key);
}
