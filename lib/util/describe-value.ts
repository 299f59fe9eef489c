const MAX_LENGTH = 120;

/**
 * Renders a received value for an error message: strings quoted, dates as ISO
 * text, anything long cut short so one bad value cannot flood a log line.
 */
export function describeValue(value: unknown): string {
  let text: string;
  if (typeof value === 'string') {
    text = JSON.stringify(value);
  } else if (value instanceof Date) {
    text = Number.isNaN(value.getTime()) ? 'Invalid Date' : `Date(${value.toISOString()})`;
  } else if (typeof value === 'bigint') {
    text = `${value}n`;
  } else if (typeof value === 'function') {
    text = `function ${value.name || '(anonymous)'}`;
  } else if (typeof value === 'symbol' || value === undefined || typeof value === 'number') {
    text = String(value);
  } else {
    try {
      text = JSON.stringify(value) ?? String(value);
    } catch {
      text = Object.prototype.toString.call(value);
    }
  }
  return text.length > MAX_LENGTH ? `${text.slice(0, MAX_LENGTH)}… (${text.length} chars)` : text;
}
