// Graphs the fake is driven with, shared by its self-check and its tests.

/** The SD1.5 txt2img graph the gateway submits. */
export const sdGraph = ({
  seed = 123,
  steps = 20,
  width = 512,
  height = 512,
  batch = 1,
  ckpt = "v1-5-pruned-emaonly.ckpt",
  prefix = "gw/JOBID",
  text = "a cat",
} = {}) => ({
  3: {
    class_type: "KSampler",
    inputs: {
      seed,
      steps,
      cfg: 8,
      sampler_name: "euler",
      scheduler: "normal",
      denoise: 1,
      model: ["4", 0],
      positive: ["6", 0],
      negative: ["7", 0],
      latent_image: ["5", 0],
    },
  },
  4: { class_type: "CheckpointLoaderSimple", inputs: { ckpt_name: ckpt } },
  5: { class_type: "EmptyLatentImage", inputs: { width, height, batch_size: batch } },
  6: { class_type: "CLIPTextEncode", inputs: { text, clip: ["4", 1] } },
  7: { class_type: "CLIPTextEncode", inputs: { text: "text, watermark", clip: ["4", 1] } },
  8: { class_type: "VAEDecode", inputs: { samples: ["3", 0], vae: ["4", 2] } },
  9: { class_type: "SaveImage", inputs: { filename_prefix: prefix, images: ["8", 0] } },
});
