// What each node class "does" in the fake. Values flowing between nodes are small descriptors
// (no tensors): an IMAGE knows its size, batch and how to paint itself; SaveImage turns it into
// real PNG bytes. Classes without an entry here pass matching inputs through (see passthrough()).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { encodePng, readPngSize } from "./png.mjs";
import { pyDumps, pyStr, num } from "./pyjson.mjs";
import { pad5 } from "./files.mjs";

const SAMPLE_DIR = fileURLToPath(new URL("./samples/files/", import.meta.url));
/** Recorded media served for encoders we do not reimplement (comfyui-samples/files/). */
const MEDIA = Object.fromEntries(
  Object.entries({
    webp: "animated_webp__gw_anim_00001_.webp",
    apng: "animated_png__gw_apng_00001_.png",
    flac: "audio_flac__gw_audio_00001_.flac",
    mp3: "audio_mp3__gw_mp3_00001_.mp3",
    opus: "audio_opus__gw_opus_00001_.opus",
    mp4: "video_mp4__gw_video_00001_.mp4",
    mp4audio: "video_mp4_with_audio__gw_video_audio_00001_.mp4",
    webm: "webm_vp9__gw_webm_00001_.webm",
    latent: "save_latent__gw_latent_00001_.latent",
  }).map(([k, f]) => [k, readFileSync(SAMPLE_DIR + f)]),
);

/** FNV-1a over a string: the deterministic "randomness" behind every generated image. */
export function fnv1a(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * @typedef {import("./png.mjs").PixelSource} PixelSource
 * @typedef {{kind: "IMAGE", width: number, height: number, batch: number, src: PixelSource, invert: boolean}} ImageVal
 * @typedef {{kind: "LATENT", media?: "image"|"video"|"audio", width: number, height: number, batch: number, hash: number | null,
 *            length?: number, seconds?: number}} LatentVal
 *   media "video": `length` frames of width×height per batch item; "audio": `seconds` long (width/height 0)
 * @typedef {{kind: "MASK", width: number, height: number, batch: number, value: number}} MaskVal
 * @typedef {{kind: "AUDIO", duration: number, sampleRate: number, channels: number}} AudioVal
 */

/**
 * @typedef {object} NodeContext
 * @property {string} id
 * @property {string} classType
 * @property {Record<string, any>} inputs   resolved: links replaced by upstream values, PyFloat unwrapped
 * @property {Record<string, any>} prompt
 * @property {Record<string, any>} extraData
 * @property {import("./files.mjs").FileStore} files
 * @property {{stepDelayMs: number}} options
 * @property {(ms: number) => Promise<void>} sleep      rejects when the fake restarts
 * @property {() => void} checkInterrupt               throws when /interrupt was called
 * @property {(value: number, max: number) => void} progress
 * @property {(err: {type: string, message: string, oom?: boolean, useRecordedImageToMask?: boolean}) => never} fail  raise a node error (becomes execution_error)
 */

/** @typedef {{outputs: any[], ui?: Record<string, any>}} NodeResult */

const PREVIEW_LETTERS = "abcdefghijklmnopqrstupvxyz"; // sic: ComfyUI's PreviewImage alphabet
const tempPrefix = () =>
  "ComfyUI_temp_" +
  Array.from({ length: 5 }, () => PREVIEW_LETTERS[Math.floor(Math.random() * PREVIEW_LETTERS.length)]).join("");

/** Sampler: one `progress` per step, interrupt honoured at every step (§6). */
async function sample(ctx, { seed, steps, startAt = 0, endAt = steps }) {
  const { inputs } = ctx;
  const total = Math.max(0, Math.min(endAt, steps) - startAt);
  for (let i = 1; i <= total; i++) {
    await ctx.sleep(ctx.options.stepDelayMs);
    ctx.checkInterrupt();
    ctx.progress(i, total);
  }
  const latent = /** @type {LatentVal} */ (
    inputs.latent_image ?? { kind: "LATENT", width: 512, height: 512, batch: 1, hash: null }
  );
  const hash = fnv1a(
    pyDumps([
      String(seed),
      steps,
      inputs.cfg,
      inputs.sampler_name,
      inputs.scheduler,
      inputs.denoise ?? 1,
      inputs.positive?.text ?? "",
      inputs.negative?.text ?? "",
      inputs.model?.ckpt ?? "",
      latent.hash,
    ]),
  );
  return { outputs: [{ ...latent, hash }] };
}

/** Write one file per batch item (PNG) with ComfyUI's naming; returns the UI list. */
function saveImages(ctx, images, prefix, type) {
  const { files, prompt, extraData } = ctx;
  const { subfolder, filename, counter } = files.saveImagePath(prefix, type, images.width, images.height);
  const text = { prompt: pyDumps(prompt) };
  for (const [k, v] of Object.entries(extraData.extra_pnginfo ?? {})) text[k] = pyDumps(v);
  const results = [];
  for (let b = 0; b < images.batch; b++) {
    const name = `${filename.replaceAll("%batch_num%", String(b))}_${pad5(counter + b)}_.png`;
    const src =
      images.src.type === "pattern"
        ? { type: "pattern", hash: (images.src.hash + Math.imul(b, 0x9e3779b1)) >>> 0 }
        : images.src;
    files.put(
      type,
      subfolder,
      name,
      encodePng(images.width, images.height, /** @type {PixelSource} */ (src), { invert: images.invert, text }),
    );
    results.push({ filename: name, subfolder, type });
  }
  return results;
}

/** One recorded media file saved under ComfyUI's name for it. */
function saveMedia(ctx, prefix, ext, bytes, type = "output") {
  const { subfolder, filename, counter } = ctx.files.saveImagePath(prefix, type);
  const name = `${filename}_${pad5(counter)}_.${ext}`;
  ctx.files.put(type, subfolder, name, bytes);
  return [{ filename: name, subfolder, type }];
}

const solid = (color) =>
  /** @type {PixelSource} */ ({ type: "solid", rgb: [(color >> 16) & 255, (color >> 8) & 255, color & 255] });

/** @type {Record<string, (ctx: NodeContext) => NodeResult | Promise<NodeResult>>} */
export const NODES = {
  CheckpointLoaderSimple: ({ inputs }) => ({
    outputs: ["MODEL", "CLIP", "VAE"].map((kind) => ({ kind, ckpt: inputs.ckpt_name })),
  }),
  // Split loaders (Wan, Flux, …): the file name plays the checkpoint's part in the sampler hash.
  UNETLoader: ({ inputs }) => ({ outputs: [{ kind: "MODEL", ckpt: inputs.unet_name }] }),
  CLIPLoader: ({ inputs }) => ({ outputs: [{ kind: "CLIP", ckpt: inputs.clip_name }] }),
  VAELoader: ({ inputs }) => ({ outputs: [{ kind: "VAE", ckpt: inputs.vae_name }] }),
  ModelSamplingSD3: ({ inputs }) => ({ outputs: [inputs.model] }),
  CLIPTextEncode: ({ inputs }) => ({ outputs: [{ kind: "CONDITIONING", text: inputs.text }] }),
  TextEncodeAceStepAudio: ({ inputs }) => ({
    outputs: [{ kind: "CONDITIONING", text: `${inputs.tags}\n${inputs.lyrics}\n${num(inputs.lyrics_strength)}` }],
  }),
  ConditioningZeroOut: ({ inputs }) => ({ outputs: [{ ...inputs.conditioning, text: "" }] }),
  EmptyLatentImage: ({ inputs }) => ({
    outputs: [
      {
        kind: "LATENT",
        media: "image",
        width: inputs.width,
        height: inputs.height,
        batch: inputs.batch_size,
        hash: null,
      },
    ],
  }),
  EmptyAceStepLatentAudio: ({ inputs }) => ({
    outputs: [
      {
        kind: "LATENT",
        media: "audio",
        width: 0,
        height: 0,
        seconds: num(inputs.seconds),
        batch: inputs.batch_size,
        hash: null,
      },
    ],
  }),
  EmptyHunyuanLatentVideo: ({ inputs }) => ({
    outputs: [
      {
        kind: "LATENT",
        media: "video",
        width: inputs.width,
        height: inputs.height,
        length: inputs.length,
        batch: inputs.batch_size,
        hash: null,
      },
    ],
  }),
  // Crops to a multiple of 8 like vae_encode_crop_pixels; the latent remembers the picture.
  VAEEncode: ({ inputs }) => {
    const img = /** @type {ImageVal} */ (inputs.pixels);
    const hash = fnv1a(JSON.stringify([img.src, img.invert]));
    return {
      outputs: [
        {
          kind: "LATENT",
          media: "image",
          width: Math.floor(img.width / 8) * 8,
          height: Math.floor(img.height / 8) * 8,
          batch: img.batch,
          hash,
        },
      ],
    };
  },
  KSampler: (ctx) => sample(ctx, { seed: ctx.inputs.seed, steps: ctx.inputs.steps }),
  KSamplerAdvanced: (ctx) =>
    sample(ctx, {
      seed: ctx.inputs.noise_seed,
      steps: ctx.inputs.steps,
      startAt: ctx.inputs.start_at_step,
      endAt: ctx.inputs.end_at_step,
    }),
  VAEDecode: ({ inputs }) => {
    const l = /** @type {LatentVal} */ (inputs.samples);
    // Latents are 1/8 of the pixel size, so odd sizes round down to a multiple of 8.
    const w = Math.max(8, Math.floor(l.width / 8) * 8),
      h = Math.max(8, Math.floor(l.height / 8) * 8);
    const src = l.hash === null ? solid(0x6f6253) : { type: "pattern", hash: l.hash };
    // Video latents hold ((length-1)//4)+1 latent frames (Wan/Hunyuan): decoding gives back
    // 1 + 4k frames, i.e. `length` for the usual 1+4k lengths; frames of all batch items in one batch.
    const frames = l.media === "video" ? Math.floor(((l.length ?? 1) - 1) / 4) * 4 + 1 : 1;
    return { outputs: [{ kind: "IMAGE", width: w, height: h, batch: l.batch * frames, src, invert: false }] };
  },
  // ACE-Step's VAE decodes to 44.1 kHz stereo of the latent's length.
  VAEDecodeAudio: ({ inputs }) => {
    const l = /** @type {LatentVal} */ (inputs.samples);
    return { outputs: [{ kind: "AUDIO", duration: l.seconds ?? 1, sampleRate: 44100, channels: 2 }] };
  },
  EmptyImage: ({ inputs }) => ({
    outputs: [
      {
        kind: "IMAGE",
        width: inputs.width,
        height: inputs.height,
        batch: inputs.batch_size,
        src: solid(inputs.color),
        invert: false,
      },
    ],
  }),
  ImageInvert: ({ inputs }) => ({ outputs: [{ ...inputs.image, invert: !inputs.image.invert }] }),
  ImageBlur: ({ inputs }) => ({ outputs: [inputs.image] }), // flat colours stay flat; patterns are "soft enough"
  ImageScale: ({ inputs }) => {
    const img = inputs.image;
    let { width, height } = inputs; // 0 keeps the aspect ratio
    if (width === 0 && height === 0) ({ width, height } = img);
    else if (width === 0) width = Math.max(1, Math.round((img.width * height) / img.height));
    else if (height === 0) height = Math.max(1, Math.round((img.height * width) / img.width));
    return { outputs: [{ ...img, width, height }] };
  },
  ImageToMask: (ctx) => {
    const img = ctx.inputs.image;
    const idx = ["red", "green", "blue", "alpha"].indexOf(ctx.inputs.channel);
    if (idx === 3) {
      // IMAGE tensors are RGB: `image[:, :, :, 3]` → IndexError [WS_ws__execution_error.json].
      ctx.fail({
        type: "IndexError",
        message: "index 3 is out of bounds for dimension 3 with size 3",
        useRecordedImageToMask: true,
      });
    }
    const value = img.src.type === "solid" ? (img.src.rgb[idx] ^ (img.invert ? 255 : 0)) / 255 : 0.5;
    return { outputs: [{ kind: "MASK", width: img.width, height: img.height, batch: img.batch, value }] };
  },
  SolidMask: ({ inputs }) => ({
    outputs: [{ kind: "MASK", width: inputs.width, height: inputs.height, batch: 1, value: inputs.value }],
  }),
  MaskToImage: ({ inputs }) => {
    const m = inputs.mask,
      g = Math.round(m.value * 255);
    return {
      outputs: [
        {
          kind: "IMAGE",
          width: m.width,
          height: m.height,
          batch: m.batch,
          src: solid((g << 16) | (g << 8) | g),
          invert: false,
        },
      ],
    };
  },
  SaveImage: (ctx) => ({
    outputs: [],
    ui: { images: saveImages(ctx, ctx.inputs.images, ctx.inputs.filename_prefix, "output") },
  }),
  PreviewImage: (ctx) => ({ outputs: [], ui: { images: saveImages(ctx, ctx.inputs.images, tempPrefix(), "temp") } }),
  MaskPreview: (ctx) => {
    const m = ctx.inputs.mask,
      g = Math.round(m.value * 255);
    const img = {
      kind: "IMAGE",
      width: m.width,
      height: m.height,
      batch: m.batch,
      src: solid((g << 16) | (g << 8) | g),
      invert: false,
    };
    return { outputs: [], ui: { images: saveImages(ctx, img, tempPrefix(), "temp") } };
  },
  LoadImage: (ctx) => {
    const name = String(ctx.inputs.image).replace(/ \[(input|output|temp)\]$/, "");
    const type = /\[(output|temp)\]$/.exec(String(ctx.inputs.image))?.[1] ?? "input";
    const slash = name.lastIndexOf("/");
    const f = ctx.files.get(type, slash >= 0 ? name.slice(0, slash) : "", name.slice(slash + 1));
    const size = (f && readPngSize(f.bytes)) ?? { width: 512, height: 512 };
    const img = {
      kind: "IMAGE",
      ...size,
      batch: 1,
      src: { type: "pattern", hash: fnv1a(f ? f.bytes.toString("latin1") : name) },
      invert: false,
    };
    return { outputs: [img, { kind: "MASK", ...size, batch: 1, value: 0 }] };
  },
  SaveAnimatedWEBP: (ctx) => ({
    outputs: [],
    // `animated` follows the input count, not the encoded frames [GET_history_prompt_id__animated_webp_identical_frames.json].
    ui: {
      images: saveMedia(ctx, ctx.inputs.filename_prefix, "webp", MEDIA.webp),
      animated: [ctx.inputs.images.batch !== 1],
    },
  }),
  SaveAnimatedPNG: (ctx) => ({
    outputs: [],
    ui: { images: saveMedia(ctx, ctx.inputs.filename_prefix, "png", MEDIA.apng), animated: [true] },
  }),
  SaveWEBM: (ctx) => ({
    outputs: [],
    ui: { images: saveMedia(ctx, ctx.inputs.filename_prefix, "webm", MEDIA.webm), animated: [true] },
  }),
  CreateVideo: ({ inputs }) => ({
    outputs: [{ kind: "VIDEO", images: inputs.images, fps: inputs.fps, audio: inputs.audio ?? null }],
  }),
  // Videos are reported under `images` with animated [true] [GET_history_prompt_id__video_mp4.json].
  SaveVideo: (ctx) => ({
    outputs: [],
    ui: {
      images: saveMedia(ctx, ctx.inputs.filename_prefix, "mp4", ctx.inputs.video?.audio ? MEDIA.mp4audio : MEDIA.mp4),
      animated: [true],
    },
  }),
  EmptyAudio: ({ inputs }) => ({
    outputs: [{ kind: "AUDIO", duration: inputs.duration, sampleRate: inputs.sample_rate, channels: inputs.channels }],
  }),
  // 0.3.64 audio names keep the trailing "_" [GET_history_prompt_id__audio_flac.json].
  SaveAudio: (ctx) => ({ outputs: [], ui: { audio: saveMedia(ctx, ctx.inputs.filename_prefix, "flac", MEDIA.flac) } }),
  SaveAudioMP3: (ctx) => ({ outputs: [], ui: { audio: saveMedia(ctx, ctx.inputs.filename_prefix, "mp3", MEDIA.mp3) } }),
  SaveAudioOpus: (ctx) => ({
    outputs: [],
    ui: { audio: saveMedia(ctx, ctx.inputs.filename_prefix, "opus", MEDIA.opus) },
  }),
  PreviewAudio: (ctx) => ({ outputs: [], ui: { audio: saveMedia(ctx, tempPrefix(), "flac", MEDIA.flac, "temp") } }),
  SaveLatent: (ctx) => ({
    outputs: [],
    ui: { latents: saveMedia(ctx, ctx.inputs.filename_prefix, "latent", MEDIA.latent) },
  }),
  PrimitiveString: ({ inputs }) => ({ outputs: [inputs.value] }),
  PrimitiveInt: ({ inputs }) => ({ outputs: [inputs.value] }),
  PrimitiveFloat: ({ inputs }) => ({ outputs: [inputs.value] }),
  PrimitiveBoolean: ({ inputs }) => ({ outputs: [inputs.value] }),
  StringConcatenate: ({ inputs }) => ({ outputs: [`${inputs.string_a}${inputs.delimiter ?? ""}${inputs.string_b}`] }),
  PreviewAny: ({ inputs }) => ({
    outputs: [],
    ui: { text: [typeof inputs.source === "string" ? inputs.source : pyStr(inputs.source)] },
  }),
};

/**
 * Default behaviour for every other class in /object_info: for each declared output type, hand
 * on the first input of that type (ImageAddNoise, ModelSamplingSD3, …) or an empty value.
 * @param {NodeContext} ctx @param {string[]} outputTypes
 * @returns {NodeResult}
 */
export function passthrough(ctx, outputTypes) {
  const vals = Object.values(ctx.inputs);
  const kindOf = (v) =>
    v && typeof v === "object" && "kind" in v
      ? v.kind
      : typeof v === "string"
        ? "STRING"
        : typeof v === "number"
          ? Number.isInteger(v)
            ? "INT"
            : "FLOAT"
          : typeof v === "boolean"
            ? "BOOLEAN"
            : null;
  return { outputs: outputTypes.map((t) => vals.find((v) => kindOf(v) === t) ?? { kind: t }) };
}

/** How ComfyUI's format_value prints an input in execution_error.current_inputs. */
export function formatInput(v) {
  v = num(v);
  if (v === undefined) return null;
  if (v === null || ["string", "number", "boolean"].includes(typeof v)) return v;
  const addr = () => `0x7f${(fnv1a(JSON.stringify(v) ?? "") & 0xfffffff).toString(16).padStart(7, "0")}e0`;
  switch (v.kind) {
    case "MODEL":
      return `<comfy.model_patcher.ModelPatcher object at ${addr()}>`;
    case "CLIP":
      return `<comfy.sd.CLIP object at ${addr()}>`;
    case "VAE":
      return `<comfy.sd.VAE object at ${addr()}>`;
    case "CONDITIONING":
      return "[[tensor([[[-0.3885,  0.0230, -0.0521,  ..., -0.4901, -0.3066,  0.0674],\n         [ 0.2134, -1.1512,  0.4406,  ...,  0.8216,  0.6129, -0.5531],\n         ...,\n         [ 0.1052, -0.8367,  0.2290,  ...,  0.4815,  0.7742, -0.2614]]]), {'pooled_output': tensor([[-0.8913,  0.2271, -0.1473,  ...,  0.4012, -0.5525,  0.1130]])}]]";
    case "LATENT":
      return `{'samples': tensor([[[[0., 0., 0.,  ..., 0., 0., 0.],\n          ...,\n          [0., 0., 0.,  ..., 0., 0., 0.]]]])}`;
    case "IMAGE":
      return "tensor([[[[0., 0., 0.],\n          ...,\n          [0., 0., 0.]]]])";
    default:
      return pyStr(v);
  }
}
