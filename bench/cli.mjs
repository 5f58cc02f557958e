// What the gateway benchmarks share: running main with cleanup on every exit (Ctrl-C included),
// integer options that exit 2 with a message when malformed, and progress lines on stderr that
// keep stdout the report alone.

/**
 * Runs `main`, then `cleanup` however it ends. The gateway runs detached (its own process group),
 * so Ctrl-C must take it down too; after Ctrl-C the in-flight calls fail because their gateway is
 * gone, which is not a crash. `interrupted` lets main stop between steps.
 */
export function benchmark(what, cleanup) {
  const state = {
    interrupted: false,
    async run(main) {
      try {
        await main();
      } catch (error) {
        if (!state.interrupted) console.error(`\n[X] benchmark crashed: ${error?.stack ?? error}`);
        process.exitCode = 1;
      } finally {
        await cleanup();
      }
    },
  };
  process.once("SIGINT", () => {
    state.interrupted = true;
    console.error(`\ninterrupted: stopping ${what}`);
    void cleanup().finally(() => process.exit(130));
  });
  return state;
}

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

/**
 * The q-quantile (0..1) of `values` by linear interpolation between the closest ranks (numpy's
 * default); NaN for no values.
 */
export function percentile(values, q) {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const index = q * (sorted.length - 1);
  const low = Math.floor(index);
  const high = Math.min(low + 1, sorted.length - 1);
  return sorted[low] + (sorted[high] - sorted[low]) * (index - low);
}

/**
 * Prints one PASS/FAIL line per `{name, pass}` check and sets the exit code to 1 when any failed,
 * so scripts and CI can trust the exit code. Returns whether all passed.
 */
export function reportChecks(checks, log = console.log) {
  for (const check of checks) log(`${check.pass ? "PASS" : "FAIL"}  ${check.name}`);
  const pass = checks.every((check) => check.pass);
  if (!pass) process.exitCode = 1;
  return pass;
}
