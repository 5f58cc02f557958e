/**
 * The studio view: one document, two homes. Inside an MCP host it shows the generation its tool
 * call started (live progress, then the results with their provenance and actions) and a gallery;
 * as the /studio page it shows the signed-in owner's assets, jobs, backends and published files.
 * Every action is a tool call, so the view can do nothing the tools would not let the caller do.
 */
import { type Bridge, type ToolResult, connectToHost, connectToPage } from "./bridge";
import { byId, h, replace, seconds } from "./dom";

interface Asset {
  asset_id: string;
  download_url: string;
  kind?: string;
  mime_type?: string;
  filename?: string;
  width?: number | null;
  height?: number | null;
  workflow_id?: string;
  backend?: string;
  created_at?: string;
}

interface Progress {
  fraction?: number;
  message?: string;
  node_index?: number;
  node_count?: number;
  node_class?: string;
  step?: number;
  steps?: number;
}

interface Job {
  job_id: string;
  status: string;
  message?: string;
  workflow_id?: string;
  tool?: string;
  backend?: string;
  params?: Record<string, unknown>;
  progress?: Progress | null;
  assets: Asset[];
  error?: { message?: string } | null;
}

const OPEN = new Set(["submitting", "queued", "running"]);
/** How long one get_job call waits: short, so progress shows up every few seconds. */
const FOLLOW_WAIT_SECONDS = 3;
const GALLERY_PAGE = 12;

let bridge: Bridge;
/** The job the "Current" section shows; a newer follow supersedes an older one. */
let followToken = 0;
let startedAt = 0;
let ticker: number | undefined;
let galleryCursor: string | null = null;

function setStatus(text: string): void {
  byId("status").textContent = text;
}

/** A tool's answer as data: structuredContent, else its JSON text; errors become exceptions. */
function data(result: ToolResult): Record<string, unknown> {
  const text = result.content?.find((block) => block.type === "text")?.text ?? "";
  if (result.isError) throw new Error(text || "The tool failed.");
  if (result.structuredContent) return result.structuredContent;
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new Error(text || "The tool returned no data.");
  }
}

async function call(name: string, args: Record<string, unknown>): Promise<Record<string, unknown>> {
  return data(await bridge.callTool(name, args));
}

// ---- the current generation -------------------------------------------------------------------

function startClock(): void {
  startedAt = Date.now();
  window.clearInterval(ticker);
  ticker = window.setInterval(() => {
    byId("elapsed").textContent = seconds(Date.now() - startedAt);
  }, 1000);
}

function stopClock(): void {
  window.clearInterval(ticker);
  ticker = undefined;
}

function describeProgress(job: Job): string {
  const p = job.progress;
  const parts = [job.status];
  if (p?.node_index !== undefined && p.node_count) {
    parts.push(`node ${p.node_index}/${p.node_count}${p.node_class ? ` ${p.node_class}` : ""}`);
  }
  if (p?.step !== undefined && p.steps) parts.push(`step ${p.step}/${p.steps}`);
  return parts.join(" · ");
}

function showProgress(job: Job | null, label?: string): void {
  const bar = byId<HTMLProgressElement>("progress");
  const fraction = job?.progress?.fraction;
  if (fraction === undefined) bar.removeAttribute("value");
  else bar.value = fraction;
  byId("progress-text").textContent = label ?? (job ? describeProgress(job) : "");
  byId("progress-box").hidden = false;
}

function hideProgress(): void {
  byId("progress-box").hidden = true;
  stopClock();
}

function altText(job: Pick<Job, "params">, asset: Asset, index: number): string {
  const prompt = typeof job.params?.prompt === "string" ? job.params.prompt.trim() : "";
  const what = asset.kind === "video" ? "Generated video" : "Generated image";
  return prompt
    ? `${what} ${index + 1}: ${prompt.slice(0, 140)}`
    : `${what} ${index + 1} (${asset.filename ?? asset.asset_id})`;
}

function media(job: Pick<Job, "params">, asset: Asset, index: number): HTMLElement {
  const kind = asset.kind ?? asset.mime_type?.split("/")[0];
  if (kind === "audio")
    return h("audio", {
      controls: true,
      preload: "metadata",
      src: asset.download_url,
      "data-asset-id": asset.asset_id,
    });
  if (kind === "video" && !(asset.mime_type ?? "").startsWith("image/")) {
    return h("video", {
      controls: true,
      preload: "metadata",
      src: asset.download_url,
      "data-asset-id": asset.asset_id,
    });
  }
  const image = h("img", {
    src: asset.download_url,
    alt: altText(job, asset, index),
    loading: "lazy",
    "data-asset-id": asset.asset_id,
  });
  const open = h("button", { class: "thumb", type: "button", title: "Open full size" }, image);
  open.addEventListener("click", () => bridge.openLink(asset.download_url));
  return open;
}

function provenance(job: Job, asset: Asset): HTMLElement {
  const params = job.params ?? {};
  const rows: [string, unknown][] = [
    ["Prompt", params.prompt],
    ["Negative", params.negative_prompt],
    ["Seed", params.seed],
    ["Model", params.model ?? params.ckpt_name],
    ["Workflow", job.workflow_id ?? asset.workflow_id],
    ["Backend", job.backend ?? asset.backend],
  ];
  return h(
    "dl",
    { class: "provenance" },
    rows
      .filter(([, value]) => value !== undefined && value !== null && value !== "")
      .flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, String(value))]),
  );
}

function actions(job: Job, asset: Asset): HTMLElement {
  const prompt = typeof job.params?.prompt === "string" ? job.params.prompt : undefined;
  const button = (action: string, label: string, run: () => Promise<void>) => {
    const element = h("button", { type: "button", "data-action": action }, label);
    element.addEventListener("click", () => {
      element.disabled = true;
      run()
        .catch((error: Error) => setStatus(error.message))
        .finally(() => {
          element.disabled = false;
        });
    });
    return element;
  };
  const editor = prompt === undefined ? null : h("textarea", { id: `prompt-${asset.asset_id}`, rows: 2 }, prompt);
  return h(
    "div",
    { class: "actions" },
    button("regenerate", "Regenerate (new seed)", () => regenerate(asset.asset_id)),
    editor && h("label", { for: editor.id, class: "label" }, "Prompt"),
    editor,
    editor &&
      button("regenerate-prompt", "Regenerate with this prompt", () => regenerate(asset.asset_id, editor.value)),
    button("publish", "Publish", () => publish(asset.asset_id)),
    button("details", "Details", () => details(asset.asset_id)),
  );
}

function showJob(job: Job): void {
  const results = byId("results");
  if (OPEN.has(job.status)) {
    showProgress(job);
  } else {
    hideProgress();
  }
  if (job.status === "failed" || job.status === "lost" || job.status === "cancelled") {
    setStatus(job.error?.message ?? job.message ?? `The job ${job.status}.`);
  } else if (!OPEN.has(job.status)) {
    setStatus(job.message ?? `Job ${job.job_id} ${job.status}.`);
  } else {
    setStatus(`Job ${job.job_id} is ${job.status}.`);
  }
  if (job.assets.length === 0 && OPEN.has(job.status)) return;
  replace(
    results,
    job.assets.map((asset, index) =>
      h(
        "article",
        { class: "result", "data-job-id": job.job_id },
        media(job, asset, index),
        provenance(job, asset),
        actions(job, asset),
      ),
    ),
  );
}

/** Follows a job with short get_job waits until it settles; superseded when another job starts. */
async function follow(jobId: string): Promise<void> {
  const token = ++followToken;
  if (!ticker) startClock();
  for (;;) {
    const job = (await call("get_job", { prompt_id: jobId, wait_seconds: FOLLOW_WAIT_SECONDS })) as unknown as Job;
    if (token !== followToken) return;
    showJob(job);
    if (!OPEN.has(job.status)) {
      if (job.assets.length) void loadGallery(true);
      return;
    }
  }
}

async function regenerate(assetId: string, prompt?: string): Promise<void> {
  setStatus(prompt === undefined ? "Regenerating with a new seed…" : "Regenerating with your prompt…");
  startClock();
  showProgress(null, "submitting");
  const args: Record<string, unknown> = { asset_id: assetId, wait_seconds: 0 };
  if (prompt !== undefined) args.param_overrides = { prompt };
  const job = (await call("regenerate", args)) as unknown as Job;
  await follow(job.job_id);
}

async function publish(assetId: string): Promise<void> {
  setStatus("Publishing…");
  // Library mode: a content-hashed file name and a manifest entry, so nothing is ever overwritten.
  const manifestKey = `studio-${assetId
    .toLowerCase()
    .replace(/[^a-z0-9]/g, "")
    .slice(0, 12)}`;
  const published = await call("publish_asset", { asset_id: assetId, manifest_key: manifestKey });
  setStatus(String(published.message ?? `Published ${assetId}.`));
  const url = typeof published.dest_url === "string" ? published.dest_url : undefined;
  if (url) {
    const link = h("a", { href: url, target: "_blank", rel: "noopener" }, url);
    byId("status").append(" ", link);
  }
  void loadPublished();
}

async function details(assetId: string): Promise<void> {
  const metadata = await call("get_asset_metadata", { asset_id: assetId });
  const box = byId("details");
  replace(box, h("h3", {}, `Details of ${assetId}`), h("pre", { tabindex: 0 }, JSON.stringify(metadata, null, 2)));
  box.hidden = false;
  box.focus();
}

/** Shows an asset picked from the gallery as the current result, with its provenance and actions. */
async function select(assetId: string): Promise<void> {
  const metadata = (await call("get_asset_metadata", { asset_id: assetId })) as unknown as Asset & Job;
  followToken++;
  showJob({
    ...metadata,
    job_id: String(metadata.job_id ?? ""),
    status: "completed",
    assets: [metadata],
    message: `Asset ${assetId}.`,
  });
}

/**
 * While the host runs the tool, its result (and so the job id) is not known yet: the queue names
 * the caller's running job, and get_job shows its progress.
 */
async function watchHostCall(args: Record<string, unknown>): Promise<void> {
  const token = ++followToken;
  startClock();
  showProgress(null, "submitting");
  setStatus(typeof args.prompt === "string" ? `Generating: ${args.prompt.slice(0, 120)}` : "Generating…");
  while (token === followToken) {
    await new Promise((resolve) => setTimeout(resolve, 1500));
    if (token !== followToken) return;
    const queue = await call("get_queue_status", {}).catch(() => undefined);
    const mine = (queue?.queue_running as { prompt_id?: string | null }[] | undefined)?.find(
      (entry) => entry.prompt_id,
    );
    if (mine?.prompt_id && token === followToken) {
      const job = (await call("get_job", { prompt_id: mine.prompt_id, wait_seconds: 0 }).catch(() => undefined)) as
        | Job
        | undefined;
      if (job && token === followToken) showProgress(job);
    }
  }
}

function showToolResult(result: ToolResult): void {
  followToken++;
  let value: Record<string, unknown>;
  try {
    value = data(result);
  } catch (error) {
    hideProgress();
    setStatus((error as Error).message);
    return;
  }
  if (typeof value.job_id === "string" && Array.isArray(value.assets)) {
    const job = value as unknown as Job;
    showJob(job);
    if (OPEN.has(job.status)) void follow(job.job_id).catch((error: Error) => setStatus(error.message));
  } else if (Array.isArray(value.assets)) {
    hideProgress();
    setStatus(`${value.assets.length} asset(s).`);
    renderGallery(value.assets as Asset[], (value.next_cursor as string | null) ?? null, false);
  } else {
    hideProgress();
    setStatus(String(value.message ?? "Done."));
  }
}

// ---- gallery, published files, backends, jobs -------------------------------------------------------

function renderGallery(assets: Asset[], cursor: string | null, append: boolean): void {
  galleryCursor = cursor;
  const grid = byId("gallery-grid");
  if (!append) grid.replaceChildren();
  for (const asset of assets) {
    const label = `${asset.kind ?? "asset"} ${asset.filename ?? asset.asset_id}`;
    const pick = h(
      "button",
      { type: "button", class: "tile", "data-gallery-id": asset.asset_id, title: "Show with its details and actions" },
      asset.kind === "image" || (asset.mime_type ?? "").startsWith("image/")
        ? h("img", { src: asset.download_url, alt: `Asset ${label}`, loading: "lazy" })
        : h("span", { class: "tile-label" }, label),
    );
    pick.addEventListener("click", () => void select(asset.asset_id).catch((error: Error) => setStatus(error.message)));
    grid.append(pick);
  }
  if (!grid.childElementCount) grid.append(h("p", { class: "empty" }, "No assets yet."));
  byId("gallery-more").hidden = !cursor;
}

async function loadGallery(fresh: boolean): Promise<void> {
  const args: Record<string, unknown> = { limit: GALLERY_PAGE };
  if (!fresh && galleryCursor) args.cursor = galleryCursor;
  const page = await call("list_assets", args);
  renderGallery(page.assets as Asset[], (page.next_cursor as string | null) ?? null, !fresh);
}

async function loadPublished(): Promise<void> {
  const list = byId("published-list");
  const page = await call("list_published", {}).catch((error: Error) => ({ files: [], message: error.message }));
  const files = (page.files as { key: string; url: string }[] | undefined) ?? [];
  replace(
    list,
    files.length
      ? files.map((file) => h("li", {}, h("a", { href: file.url, target: "_blank", rel: "noopener" }, file.key)))
      : h("li", { class: "empty" }, String(page.message ?? "Nothing published yet.")),
  );
}

async function loadBackends(): Promise<void> {
  const answer = await call("list_backends", {});
  const backends = (answer.backends as { name: string; state?: string; status?: string }[] | undefined) ?? [];
  replace(
    byId("backends-list"),
    backends.map((backend) => h("li", {}, `${backend.name}: ${backend.state ?? backend.status ?? "unknown"}`)),
  );
}

async function loadJobs(): Promise<void> {
  const queue = await call("get_queue_status", {});
  const mine = [
    ...((queue.queue_running as { prompt_id: string | null }[]) ?? []).map((entry) => ({ ...entry, state: "running" })),
    ...((queue.queue_pending as { prompt_id: string | null }[]) ?? []).map((entry) => ({ ...entry, state: "pending" })),
  ].filter((entry) => entry.prompt_id);
  replace(
    byId("jobs-list"),
    mine.length
      ? mine.map((entry) => {
          const open = h(
            "button",
            { type: "button", "data-job": entry.prompt_id! },
            `${entry.state}: ${entry.prompt_id}`,
          );
          open.addEventListener(
            "click",
            () => void follow(entry.prompt_id!).catch((error: Error) => setStatus(error.message)),
          );
          return h("li", {}, open);
        })
      : h("li", { class: "empty" }, String(queue.message ?? "No jobs of yours are queued.")),
  );
}

// ---- start -------------------------------------------------------------------------------------------

function wireStaticControls(): void {
  byId("gallery-more").addEventListener(
    "click",
    () => void loadGallery(false).catch((error: Error) => setStatus(error.message)),
  );
  byId("gallery-section").addEventListener("toggle", (event) => {
    if ((event.target as HTMLDetailsElement).open && !byId("gallery-grid").childElementCount) {
      void loadGallery(true).catch((error: Error) => setStatus(error.message));
      void loadPublished();
    }
  });
}

async function start(): Promise<void> {
  wireStaticControls();
  const embedded = window.parent !== window;
  if (!embedded) {
    bridge = connectToPage();
    document.body.classList.add("page");
    byId<HTMLDetailsElement>("gallery-section").open = true;
    for (const id of ["backends-section", "jobs-section"]) byId(id).hidden = false;
    setStatus("Loading your studio…");
    await Promise.all([loadGallery(true), loadPublished(), loadBackends(), loadJobs()]);
    setStatus("Pick an asset to see its details and actions.");
    return;
  }
  setStatus("Waiting for the host…");
  bridge = await connectToHost({
    toolInput: (args) => void watchHostCall(args).catch((error: Error) => setStatus(error.message)),
    toolResult: showToolResult,
    toolCancelled: (reason) => {
      followToken++;
      hideProgress();
      setStatus(reason);
    },
    theme: (theme) => {
      document.documentElement.dataset.theme = theme;
    },
  });
  setStatus("Ready.");
}

start().catch((error: Error) => setStatus(error.message));
