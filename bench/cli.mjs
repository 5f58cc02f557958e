// What the gateway benchmarks share: integer options that exit 2 with a message when malformed,
// and progress lines on stderr that keep stdout the report alone.

/** Reads `values[name]` as an integer >= min, or exits 2 naming the option. */
export function integerOption(values, name, min) {
  const value = Number(values[name]);
  if (!Number.isInteger(value) || value < min) {
    console.error(`--${name} must be an integer >= ${min}, not '${values[name]}'`);
    process.exit(2);
  }
  return value;
}

/** Progress on stderr, redrawn in place on a terminal, so stdout stays the report alone. */
export function progress(line) {
  if (process.stderr.isTTY) process.stderr.write(`\r  ${line}\x1b[K`);
}

export function progressDone() {
  if (process.stderr.isTTY) process.stderr.write("\r\x1b[K");
}
