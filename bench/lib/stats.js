/** Small statistics for benchmark figures. */

function median(values) {
  return percentile(values, 50);
}

/** The p-th percentile (nearest rank) of `values`. */
function percentile(values, p) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

module.exports = { median, percentile };
