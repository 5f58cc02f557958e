// Runs in Node: starts the fake ComfyUI on an ephemeral port and hands the port to the workerd
// side (`inject("comfyPort")`).
import type { TestProject } from "vitest/node";
// @ts-expect-error plain JavaScript module without type declarations
import { startFakeComfy } from "../fake-comfyui/server.mjs";

declare module "vitest" {
  export interface ProvidedContext {
    comfyPort: number;
  }
}

export default async function setup(project: TestProject) {
  const fake = await startFakeComfy({ port: 0, stepDelayMs: 5, nodeDelayMs: 1 });
  project.provide("comfyPort", fake.port);
  return async () => {
    await fake.close();
  };
}
