// Dev tool, NOT used at runtime: regenerates the compact sample copies in this folder from the
// recorded ComfyUI 0.3.64 traffic. Usage:
//   node test/fake-comfyui/samples/extract-samples.mjs [/path/to/comfyui-samples]
// The fake server only reads the files this script writes, so a clone without the recordings works.
import { readFileSync, writeFileSync, copyFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const src = process.argv[2] ?? "/work/shared/comfyui-samples";
const load = (name) => JSON.parse(readFileSync(join(src, name), "utf8"));
const body = (name) => load(name).response.body.json;
const out = (name, value) => writeFileSync(join(here, name), JSON.stringify(value) + "\n");

// Discovery bodies, served verbatim (object_info gets its checkpoint list patched at runtime).
out("object_info.json", body("GET_object_info.json"));
out("system_stats.json", body("GET_system_stats.json"));
out("features.json", body("GET_features.json"));
out("models.json", body("GET_models.json"));

// Payloads the fake reuses when it fabricates errors.
const errWs = load("WS_ws__execution_error.json").messages.find((m) => m.message.type === "execution_error");
const badLink = body("POST_prompt__error_bad_link.json");
out("error_payloads.json", {
  _source: {
    imageToMask: "WS_ws__execution_error.json (execution_error message data)",
    validationKeyErrorTraceback: "POST_prompt__error_bad_link.json (node_errors['2'].errors[0].extra_info.traceback)",
  },
  imageToMask: errWs.message.data,
  validationKeyErrorTraceback: badLink.node_errors["2"].errors[0].extra_info.traceback,
});

// What selfcheck.mjs replays and compares against (request bodies + recorded answers/event orders).
const errorSamples = [
  "POST_prompt__error_no_prompt.json", "POST_prompt__error_unknown_class.json",
  "POST_prompt__error_no_outputs.json", "POST_prompt__error_missing_input.json",
  "POST_prompt__error_value_below_min.json", "POST_prompt__error_wrong_type.json",
  "POST_prompt__error_bad_combo.json", "POST_prompt__error_missing_checkpoint.json",
  "POST_prompt__error_bad_link.json",
];
const ws = (name) => { const d = load(name); return { message_types: d.message_types }; };
out("recorded.json", {
  _source: "comfyui-samples/ (ComfyUI 0.3.64); one key per sample file",
  prompt_errors: errorSamples.map((name) => {
    const d = load(name);
    return { sample: name, request: d.request.body.json, status: d.response.status,
      content_length: Number(d.response.headers["Content-Length"]), response: d.response.body.json };
  }),
  "POST_prompt.json": load("POST_prompt.json").request.body.json,
  "POST_prompt__execution_error.json": load("POST_prompt__execution_error.json").request.body.json,
  "WS_ws.json": ws("WS_ws.json"),
  "WS_ws__cached_rerun.json": ws("WS_ws__cached_rerun.json"),
  "WS_ws__execution_error.json": ws("WS_ws__execution_error.json"),
  "WS_ws__no_client_id.json": ws("WS_ws__no_client_id.json"),
  "GET_history_prompt_id.json": body("GET_history_prompt_id.json"),
  "GET_view.json": { headers: load("GET_view.json").response.headers },
});

// Raw media the fake serves for nodes whose encoders we do not reimplement.
for (const f of [
  "animated_webp__gw_anim_00001_.webp", "animated_png__gw_apng_00001_.png",
  "audio_flac__gw_audio_00001_.flac", "audio_mp3__gw_mp3_00001_.mp3", "audio_opus__gw_opus_00001_.opus",
  "video_mp4__gw_video_00001_.mp4", "video_mp4_with_audio__gw_video_audio_00001_.mp4",
  "webm_vp9__gw_webm_00001_.webm", "save_latent__gw_latent_00001_.latent",
]) copyFileSync(join(src, "files", f), join(here, "files", f));
console.log("samples written to", here);
