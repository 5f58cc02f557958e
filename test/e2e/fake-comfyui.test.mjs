// The fake ComfyUI is only as good as its fidelity to the recordings: run its self-check (event
// orders, error bodies byte for byte, /view headers, faults) as part of the suite.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { expect, it } from "vitest";

it("the fake ComfyUI passes its self-check against the recorded ComfyUI 0.3.64 samples", async () => {
  const { stdout } = await promisify(execFile)(process.execPath, ["test/fake-comfyui/selfcheck.mjs"], {
    timeout: 60_000,
  });
  expect(stdout).not.toMatch(/^FAIL/m);
  expect(stdout).toMatch(/selfcheck: all checks passed/);
});
