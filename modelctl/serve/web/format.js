// How numbers are written on the page.

export function usd(value) {
  if (value === null || value === undefined) return "?";
  if (value === 0) return "$0";
  const digits = Math.abs(value) >= 1 ? 2 : Math.abs(value) >= 0.01 ? 4 : 6;
  return "$" + value.toFixed(digits);
}

export function count(n) {
  if (n === null || n === undefined) return "?";
  if (n >= 1e6) return (n / 1e6).toFixed(n >= 1e7 ? 0 : 1) + "M";
  if (n >= 1e4) return Math.round(n / 1e3) + "k";
  return String(n);
}

export function bytes(n) {
  if (!n) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + " " + units[i];
}

export function seconds(s) {
  if (s === null || s === undefined) return "";
  return s < 60 ? s.toFixed(s < 10 ? 1 : 0) + " s" : Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
}

/** A model's price per 1M tokens, "free", or "" when unknown. */
export function price(pricing) {
  if (!pricing) return "";
  if (!pricing.input && !pricing.output) return "free";
  return `${usd(pricing.input)} / ${usd(pricing.output)} per 1M`;
}
