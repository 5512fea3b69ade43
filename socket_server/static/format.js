// How numbers, times and errors read on the page.

export const fmt2 = (v) => (typeof v === "number" ? v.toFixed(2) : "–");
export const clamp01 = (v) => Math.max(0, Math.min(1, Number(v) || 0));

export function clockTime(iso) {
  const d = iso ? new Date(iso) : new Date();
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export function ago(iso) {
  const seconds = (new Date(iso).getTime() - Date.now()) / 1000;
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  const steps = [[60, "second"], [60, "minute"], [24, "hour"], [7, "day"], [4.35, "week"],
                 [12, "month"], [Infinity, "year"]];
  let value = seconds;
  for (const [size, unit] of steps) {
    if (Math.abs(value) < size) return rtf.format(Math.round(value), unit);
    value /= size;
  }
  return "";
}

export function errorText(err) {
  if (!err) return "something went wrong";
  if (err.code === "rate_limited" && err.retry_after) {
    return `${err.message} (try again in ${Math.ceil(err.retry_after)} s)`;
  }
  return err.message || String(err);
}
