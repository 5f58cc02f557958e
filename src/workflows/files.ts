/**
 * The shapes of workflow files as the build step bundles them (bundled.generated.ts imports these,
 * so they live apart from the registry that imports the bundle).
 */
export interface BundledWorkflowFile {
  id: string;
  graph: unknown;
  meta?: unknown;
}

export interface RejectedWorkflow {
  file: string;
  problem: string;
}
