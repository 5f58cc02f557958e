import { describe, expect, it } from "vitest";
import type { ComfyGraph } from "../../src/comfy/types";
import { definitionFromProposals, planParameters, proposeParameters } from "../../src/workflows/proposals.ts";
import { convertUiWorkflow, detectFormat, type ObjectInfo } from "../../src/workflows/ui-format.ts";
import { type GraphValidation, validateAgainst } from "../../src/workflows/validate-graph.ts";
// @ts-expect-error plain JavaScript module without type declarations
import { validatePrompt } from "../fake-comfyui/validate.mjs";
import recordedObjectInfo from "../fake-comfyui/samples/object_info.json";
import t_area_composition from "../fixtures/templates/area_composition.json";
import t_audio_ace_step_1_m2m_editing from "../fixtures/templates/audio_ace_step_1_m2m_editing.json";
import t_audio_ace_step_1_t2a_song from "../fixtures/templates/audio_ace_step_1_t2a_song.json";
import t_audio_stable_audio_example from "../fixtures/templates/audio_stable_audio_example.json";
import t_controlnet_example from "../fixtures/templates/controlnet_example.json";
import t_default from "../fixtures/templates/default.json";
import t_embedding_example from "../fixtures/templates/embedding_example.json";
import t_esrgan_example from "../fixtures/templates/esrgan_example.json";
import t_flux1_dev_uso_reference_image_gen from "../fixtures/templates/flux1_dev_uso_reference_image_gen.json";
import t_flux1_krea_dev from "../fixtures/templates/flux1_krea_dev.json";
import t_flux_dev_checkpoint_example from "../fixtures/templates/flux_dev_checkpoint_example.json";
import t_flux_dev_full_text_to_image from "../fixtures/templates/flux_dev_full_text_to_image.json";
import t_flux_fill_inpaint_example from "../fixtures/templates/flux_fill_inpaint_example.json";
import t_flux_kontext_dev_basic from "../fixtures/templates/flux_kontext_dev_basic.json";
import t_flux_redux_model_example from "../fixtures/templates/flux_redux_model_example.json";
import t_flux_schnell from "../fixtures/templates/flux_schnell.json";
import t_hidream_e1_1 from "../fixtures/templates/hidream_e1_1.json";
import t_hiresfix_esrgan_workflow from "../fixtures/templates/hiresfix_esrgan_workflow.json";
import t_hiresfix_latent_workflow from "../fixtures/templates/hiresfix_latent_workflow.json";
import t_hunyuan_video_text_to_video from "../fixtures/templates/hunyuan_video_text_to_video.json";
import t_image2image from "../fixtures/templates/image2image.json";
import t_image_flux_1_fill_dev_OneReward from "../fixtures/templates/image_flux.1_fill_dev_OneReward.json";
import t_image_qwen_image from "../fixtures/templates/image_qwen_image.json";
import t_image_qwen_image_edit from "../fixtures/templates/image_qwen_image_edit.json";
import t_image_qwen_image_instantx_controlnet from "../fixtures/templates/image_qwen_image_instantx_controlnet.json";
import t_image_qwen_image_instantx_inpainting_controlnet from "../fixtures/templates/image_qwen_image_instantx_inpainting_controlnet.json";
import t_image_to_video_wan from "../fixtures/templates/image_to_video_wan.json";
import t_inpaint_example from "../fixtures/templates/inpaint_example.json";
import t_inpaint_model_outpainting from "../fixtures/templates/inpaint_model_outpainting.json";
import t_lora from "../fixtures/templates/lora.json";
import t_lora_multiple from "../fixtures/templates/lora_multiple.json";
import t_sd3_5_simple_example from "../fixtures/templates/sd3.5_simple_example.json";
import t_sdxl_refiner_prompt_example from "../fixtures/templates/sdxl_refiner_prompt_example.json";
import t_sdxl_simple_example from "../fixtures/templates/sdxl_simple_example.json";
import t_sdxlturbo_example from "../fixtures/templates/sdxlturbo_example.json";
import t_text_to_video_wan from "../fixtures/templates/text_to_video_wan.json";
import t_video_wan2_2_14B_animate from "../fixtures/templates/video_wan2_2_14B_animate.json";
import t_video_wan2_2_14B_i2v from "../fixtures/templates/video_wan2_2_14B_i2v.json";
import t_video_wan2_2_14B_s2v from "../fixtures/templates/video_wan2_2_14B_s2v.json";
import t_video_wan2_2_14B_t2v from "../fixtures/templates/video_wan2_2_14B_t2v.json";
import t_video_wan2_2_5B_ti2v from "../fixtures/templates/video_wan2_2_5B_ti2v.json";
// Current upstream templates (subgraphs, proxyWidgets; SOURCES.md): stored text, not byte-verified against upstream.
import t_01_get_started_text_to_image_current from "../fixtures/templates/01_get_started_text_to_image.current.json";
import t_01_qwen_t2i_subgraphed_current from "../fixtures/templates/01_qwen_t2i_subgraphed.current.json";
import t_05_audio_ace_step_1_t2a_song_subgraphed_current from "../fixtures/templates/05_audio_ace_step_1_t2a_song_subgraphed.current.json";
import t_default_current from "../fixtures/templates/default.current.json";
import t_flux1_krea_dev_current from "../fixtures/templates/flux1_krea_dev.current.json";
/** `/object_info` recorded from a real ComfyUI 0.3.64 (376 classes; test/fake-comfyui/samples/SOURCES.md). */
const OBJECT_INFO = recordedObjectInfo as unknown as ObjectInfo;

const TEMPLATES: Record<string, unknown> = {
  area_composition: t_area_composition,
  audio_ace_step_1_m2m_editing: t_audio_ace_step_1_m2m_editing,
  audio_ace_step_1_t2a_song: t_audio_ace_step_1_t2a_song,
  audio_stable_audio_example: t_audio_stable_audio_example,
  controlnet_example: t_controlnet_example,
  default: t_default,
  embedding_example: t_embedding_example,
  esrgan_example: t_esrgan_example,
  flux1_dev_uso_reference_image_gen: t_flux1_dev_uso_reference_image_gen,
  flux1_krea_dev: t_flux1_krea_dev,
  flux_dev_checkpoint_example: t_flux_dev_checkpoint_example,
  flux_dev_full_text_to_image: t_flux_dev_full_text_to_image,
  flux_fill_inpaint_example: t_flux_fill_inpaint_example,
  flux_kontext_dev_basic: t_flux_kontext_dev_basic,
  flux_redux_model_example: t_flux_redux_model_example,
  flux_schnell: t_flux_schnell,
  hidream_e1_1: t_hidream_e1_1,
  hiresfix_esrgan_workflow: t_hiresfix_esrgan_workflow,
  hiresfix_latent_workflow: t_hiresfix_latent_workflow,
  hunyuan_video_text_to_video: t_hunyuan_video_text_to_video,
  image2image: t_image2image,
  "image_flux.1_fill_dev_OneReward": t_image_flux_1_fill_dev_OneReward,
  image_qwen_image: t_image_qwen_image,
  image_qwen_image_edit: t_image_qwen_image_edit,
  image_qwen_image_instantx_controlnet: t_image_qwen_image_instantx_controlnet,
  image_qwen_image_instantx_inpainting_controlnet: t_image_qwen_image_instantx_inpainting_controlnet,
  image_to_video_wan: t_image_to_video_wan,
  inpaint_example: t_inpaint_example,
  inpaint_model_outpainting: t_inpaint_model_outpainting,
  lora: t_lora,
  lora_multiple: t_lora_multiple,
  "sd3.5_simple_example": t_sd3_5_simple_example,
  sdxl_refiner_prompt_example: t_sdxl_refiner_prompt_example,
  sdxl_simple_example: t_sdxl_simple_example,
  sdxlturbo_example: t_sdxlturbo_example,
  text_to_video_wan: t_text_to_video_wan,
  video_wan2_2_14B_animate: t_video_wan2_2_14B_animate,
  video_wan2_2_14B_i2v: t_video_wan2_2_14B_i2v,
  video_wan2_2_14B_s2v: t_video_wan2_2_14B_s2v,
  video_wan2_2_14B_t2v: t_video_wan2_2_14B_t2v,
  video_wan2_2_5B_ti2v: t_video_wan2_2_5B_ti2v,
  "01_get_started_text_to_image.current": t_01_get_started_text_to_image_current,
  "01_qwen_t2i_subgraphed.current": t_01_qwen_t2i_subgraphed_current,
  "05_audio_ace_step_1_t2a_song_subgraphed.current": t_05_audio_ace_step_1_t2a_song_subgraphed_current,
  "default.current": t_default_current,
  "flux1_krea_dev.current": t_flux1_krea_dev_current,
};

type Outcome =
  | { outcome: "converted" }
  | { outcome: "needs_map"; because: RegExp }
  | { outcome: "refused"; because: RegExp };

const CONVERTED: Outcome = { outcome: "converted" };
const MODELS_DIFFER = { outcome: "needs_map", because: /samplers use 2 different models/ } as const;
const PROMPTS_DIFFER = { outcome: "needs_map", because: /samplers use different texts/ } as const;
const NO_UPSCALER = {
  outcome: "refused",
  because: /node \d+ \((UpscaleModelLoader|ImageUpscaleWithModel)\) class '\1' does not exist on this backend/,
} as const;

/** What happens to each template against the recorded 0.3.64 backend (SOURCES.md has the table). */
const EXPECTED: Record<string, Outcome> = {
  area_composition: PROMPTS_DIFFER,
  audio_ace_step_1_m2m_editing: CONVERTED,
  audio_ace_step_1_t2a_song: CONVERTED,
  audio_stable_audio_example: CONVERTED,
  controlnet_example: { outcome: "refused", because: /node 34 \(Canny\) class 'Canny' does not exist on this backend/ },
  default: CONVERTED,
  embedding_example: CONVERTED,
  esrgan_example: NO_UPSCALER,
  flux1_dev_uso_reference_image_gen: CONVERTED,
  flux1_krea_dev: CONVERTED,
  flux_dev_checkpoint_example: CONVERTED,
  flux_dev_full_text_to_image: CONVERTED,
  flux_fill_inpaint_example: CONVERTED,
  flux_kontext_dev_basic: CONVERTED,
  flux_redux_model_example: CONVERTED,
  flux_schnell: CONVERTED,
  hidream_e1_1: CONVERTED,
  hiresfix_esrgan_workflow: NO_UPSCALER,
  hiresfix_latent_workflow: CONVERTED,
  hunyuan_video_text_to_video: CONVERTED,
  image2image: CONVERTED,
  "image_flux.1_fill_dev_OneReward": CONVERTED,
  image_qwen_image: CONVERTED,
  image_qwen_image_edit: CONVERTED,
  image_qwen_image_instantx_controlnet: MODELS_DIFFER,
  image_qwen_image_instantx_inpainting_controlnet: CONVERTED,
  image_to_video_wan: CONVERTED,
  inpaint_example: CONVERTED,
  inpaint_model_outpainting: CONVERTED,
  lora: CONVERTED,
  lora_multiple: CONVERTED,
  "sd3.5_simple_example": CONVERTED,
  sdxl_refiner_prompt_example: PROMPTS_DIFFER,
  sdxl_simple_example: MODELS_DIFFER,
  sdxlturbo_example: CONVERTED,
  text_to_video_wan: CONVERTED,
  video_wan2_2_14B_animate: {
    outcome: "refused",
    because:
      /node 107 \(Sam2Segmentation\) class 'Sam2Segmentation' does not exist.*node 168 \(SetNode, "Set_pose_video"\)/,
  },
  video_wan2_2_14B_i2v: MODELS_DIFFER,
  video_wan2_2_14B_s2v: CONVERTED,
  video_wan2_2_14B_t2v: MODELS_DIFFER,
  video_wan2_2_5B_ti2v: CONVERTED,
  "01_get_started_text_to_image.current": CONVERTED,
  "01_qwen_t2i_subgraphed.current": CONVERTED,
  // The instance saved no values (`widgets_values: []`, proxyWidgets pointing at the inner nodes): as the
  // frontend, each promoted input keeps the inner widget's value. ACE-Step 1.5 is then refused for its real
  // reason: its nodes are newer than 0.3.64.
  "05_audio_ace_step_1_t2a_song_subgraphed.current": {
    outcome: "refused",
    because: /EmptyAceStep1\.5LatentAudio.* does not exist/,
  },
  "default.current": CONVERTED,
  "flux1_krea_dev.current": CONVERTED,
};

function convert(name: string): ComfyGraph {
  const result = convertUiWorkflow(TEMPLATES[name], OBJECT_INFO);
  if (!result.ok) throw new Error(`${name}: ${result.problem}`);
  return result.graph;
}

/** The object_info of a backend that has the models and input files the graph names. */
function withFiles(validation: GraphValidation): ObjectInfo {
  const info = structuredClone(OBJECT_INFO) as Record<string, { input: Record<string, Record<string, unknown[]>> }>;
  for (const file of [...validation.missingModels, ...validation.missingInputFiles]) {
    const inputs = info[file.class_type]!.input;
    const spec = (inputs.required?.[file.input] ?? inputs.optional?.[file.input])!;
    if (Array.isArray(spec[0])) spec[0].push(file.value);
    else {
      const options = (spec[1] ?? {}) as { options?: unknown[] };
      options.options = [...(options.options ?? []), file.value];
      spec[1] = options;
    }
  }
  return info as unknown as ObjectInfo;
}

describe("the template corpus against the recorded ComfyUI 0.3.64 /object_info", () => {
  it("has a fixture for every expected outcome and at least 25 templates", () => {
    expect(Object.keys(TEMPLATES).sort()).toEqual(Object.keys(EXPECTED).sort());
    expect(Object.keys(TEMPLATES).length).toBeGreaterThanOrEqual(25);
  });

  for (const [name, expected] of Object.entries(EXPECTED)) {
    it(`${name}: ${expected.outcome}`, () => {
      expect(detectFormat(TEMPLATES[name])).toBe("ui");
      const result = convertUiWorkflow(TEMPLATES[name], OBJECT_INFO);
      if (expected.outcome === "refused") {
        expect(result.ok).toBe(false);
        if (!result.ok) expect(result.problem).toMatch(expected.because);
        return;
      }
      if (!result.ok) throw new Error(result.problem);
      // Only model files and input media are missing from the recorded backend: never fatal.
      const ours = validateAgainst(result.graph, OBJECT_INFO);
      expect(ours.problems).toEqual([]);
      // The fake's port of ComfyUI's validate_prompt accepts it once the files exist.
      const fake = validatePrompt(structuredClone(result.graph), withFiles(ours), { inputFileExists: () => true });
      expect({ error: fake.error, nodeErrors: fake.nodeErrors }).toEqual({ error: null, nodeErrors: {} });
      expect(validateAgainst(result.graph, withFiles(ours)).ok).toBe(true);

      const plan = planParameters(result.graph, OBJECT_INFO);
      if (expected.outcome === "needs_map") expect(plan.needsMap.join(" / ")).toMatch(expected.because);
      else expect(plan.needsMap).toEqual([]);
      const definition = definitionFromProposals(name.replace(/[^A-Za-z0-9_.-]/g, "_"), result.graph, plan.proposals);
      if (!definition.ok) throw new Error(definition.problem);
      expect(definition.workflow.params.map((param) => param.name).sort()).toEqual(
        plan.proposals.map((p) => p.name).sort(),
      );
    });
  }
});

describe("converted templates carry what ComfyUI's frontend would send", () => {
  it("SD 1.5 default: every widget value in place, the seed's control value skipped", () => {
    expect(convert("default")["3"]).toEqual({
      class_type: "KSampler",
      inputs: {
        seed: 156680208700286,
        steps: 20,
        cfg: 8,
        sampler_name: "euler",
        scheduler: "normal",
        denoise: 1,
        model: ["4", 0],
        positive: ["6", 0],
        negative: ["7", 0],
        latent_image: ["5", 0],
      },
      _meta: { title: "KSampler" },
    });
  });

  it("a bypassed LoRA is routed around: the active LoRA reads the checkpoint directly", () => {
    const graph = convert("lora");
    expect(graph["10"]).toBeUndefined();
    expect(graph["11"]!.inputs).toMatchObject({
      model: ["4", 0],
      clip: ["4", 1],
      lora_name: "blindbox_v1_mix.safetensors",
    });
  });

  it("primitive nodes write their value into every widget they feed (SDXL base + refiner)", () => {
    const graph = convert("sdxl_simple_example");
    expect(graph["45"]).toBeUndefined();
    expect(graph["11"]!.inputs).toMatchObject({
      steps: 25,
      start_at_step: 20,
      end_at_step: 10000,
      add_noise: "disable",
    });
    expect(graph["10"]!.inputs).toMatchObject({ steps: 25, end_at_step: 20, noise_seed: 721897303308196 });
    expect(graph["15"]!.inputs.text).toBe(graph["6"]!.inputs.text);
  });

  it("reroutes are followed and primitives feed floats (HiDream E1.1)", () => {
    const graph = convert("hidream_e1_1");
    expect(graph["48"]).toBeUndefined();
    expect(graph["49"]!.inputs.model).toEqual(["55", 0]);
    expect(graph["53"]!.inputs).toMatchObject({ model: ["55", 0], cfg_conds: 3, cfg_cond2_negative: 1.5 });
  });

  it("subgraphs are expanded with <instance>:<inner> ids and promoted widget values (Flux USO)", () => {
    const graph = convert("flux1_dev_uso_reference_image_gen");
    expect(graph["57:35"]).toMatchObject({
      class_type: "FluxGuidance",
      inputs: { guidance: 3.5, conditioning: ["57:41", 0] },
    });
    expect(graph["31"]!.inputs).toMatchObject({ positive: ["57:35", 0], model: ["95", 0] });
    expect(graph["95"]!.inputs.model).toEqual(["55:54", 0]);
    // The three bypassed USO style instances are routed around: 55:54 takes the LoRA's model.
    expect(graph["55:54"]!.inputs.model).toEqual(["43", 0]);
    expect(Object.keys(graph).filter((id) => /^(56|83|89):/.test(id))).toEqual([]);
  });

  it("muted nodes are not sent (SDXL Turbo's SaveImage, Hunyuan Video's VAEDecode)", () => {
    expect(Object.values(convert("sdxlturbo_example")).map((node) => node.class_type)).not.toContain("SaveImage");
    const muted = (TEMPLATES.hunyuan_video_text_to_video as { nodes: { id: number; mode: number }[] }).nodes.find(
      (node) => node.mode === 2,
    )!;
    expect(convert("hunyuan_video_text_to_video")[String(muted.id)]).toBeUndefined();
  });
});

/** Each proposal as name → [default, node_id, input]. */
const summary = (name: string) =>
  Object.fromEntries(
    proposeParameters(convert(name), OBJECT_INFO).map((p) => [p.name, [p.default, p.node_id, p.input]]),
  );

describe("parameter proposals", () => {
  it("SD 1.5: exactly prompt, negative_prompt, seed, steps, cfg, sampler_name, scheduler, width, height, model", () => {
    expect(summary("default")).toEqual({
      prompt: ["beautiful scenery nature glass bottle landscape, , purple galaxy bottle,", "6", "text"],
      negative_prompt: ["text, watermark", "7", "text"],
      seed: [156680208700286, "3", "seed"],
      steps: [20, "3", "steps"],
      cfg: [8, "3", "cfg"],
      sampler_name: ["euler", "3", "sampler_name"],
      scheduler: ["normal", "3", "scheduler"],
      width: [512, "5", "width"],
      height: [512, "5", "height"],
      model: ["v1-5-pruned-emaonly-fp16.safetensors", "4", "ckpt_name"],
    });
  });

  it("Flux schnell: the same set, its empty negative prompt included", () => {
    const proposals = summary("flux_schnell");
    expect(Object.keys(proposals)).toEqual([
      "prompt",
      "negative_prompt",
      "seed",
      "steps",
      "cfg",
      "sampler_name",
      "scheduler",
      "width",
      "height",
      "model",
    ]);
    expect(proposals).toMatchObject({
      negative_prompt: ["", "33", "text"],
      seed: [173805153958730, "31", "seed"],
      steps: [4, "31", "steps"],
      cfg: [1, "31", "cfg"],
      sampler_name: ["euler", "31", "sampler_name"],
      scheduler: ["simple", "31", "scheduler"],
      width: [1024, "27", "width"],
      height: [1024, "27", "height"],
      model: ["flux1-schnell-fp8.safetensors", "30", "ckpt_name"],
    });
  });

  it("Flux dev: guidance instead of a real negative prompt; T5 text is the prompt", () => {
    expect(Object.keys(summary("flux_dev_checkpoint_example"))).toEqual([
      "prompt",
      "negative_prompt",
      "seed",
      "steps",
      "cfg",
      "sampler_name",
      "scheduler",
      "guidance",
      "width",
      "height",
      "model",
    ]);
    const full = summary("flux_dev_full_text_to_image");
    expect(Object.keys(full)).not.toContain("negative_prompt"); // ConditioningZeroOut: no text behind it
    expect(full.prompt![2]).toBe("t5xxl");
    expect(full.guidance).toEqual([3.5, "41", "guidance"]);
    expect(full.model).toEqual(["flux1-dev.safetensors", "38", "unet_name"]);
  });

  it("binds equal values of several samplers to one parameter and media inputs as media", () => {
    const wan = proposeParameters(convert("video_wan2_2_14B_i2v"), OBJECT_INFO);
    expect(wan.find((p) => p.name === "steps")!.bindings).toEqual([
      { node_id: "85", input: "steps" },
      { node_id: "86", input: "steps" },
    ]);
    // The seed of the pass that adds no noise is not the seed.
    expect(wan.find((p) => p.name === "seed")!.bindings).toHaveLength(1);
    expect(wan.find((p) => p.name === "image")).toMatchObject({ type: "image", default: "input-18.jpg" });
    const ace = proposeParameters(convert("audio_ace_step_1_m2m_editing"), OBJECT_INFO);
    expect(ace.map((p) => p.name)).toEqual(expect.arrayContaining(["tags", "lyrics", "denoise", "audio"]));
  });

  it("becomes a workflow definition through PARAM_ placeholders and a sidecar", () => {
    const graph = convert("image2image");
    const result = definitionFromProposals("image2image_ui", graph, proposeParameters(graph, OBJECT_INFO));
    if (!result.ok) throw new Error(result.problem);
    const { workflow } = result;
    expect(workflow.graph["3"]!.inputs.denoise).toBe("PARAM_FLOAT_DENOISE");
    expect(workflow.graph["10"]!.inputs.image).toBe("PARAM_IMAGE_IMAGE");
    const image = workflow.params.find((p) => p.name === "image")!;
    expect(image).toMatchObject({ type: "image", required: true });
    expect(image.default).toBeUndefined();
    expect(workflow.params.find((p) => p.name === "denoise")).toMatchObject({
      default: 0.8700000000000001,
      min: 0,
      max: 1,
    });
  });
});

describe("current upstream templates (subgraphs with promoted and proxy widgets)", () => {
  it("SD 1.5 default (current): exactly the ten proposals, the template's values as defaults", () => {
    expect(summary("default.current")).toEqual({
      prompt: ["beautiful scenery nature glass bottle landscape, purple galaxy bottle,", "6", "text"],
      negative_prompt: ["text, watermark", "7", "text"],
      seed: [685468484323813, "3", "seed"],
      steps: [20, "3", "steps"],
      cfg: [8, "3", "cfg"],
      sampler_name: ["euler", "3", "sampler_name"],
      scheduler: ["normal", "3", "scheduler"],
      width: [512, "5", "width"],
      height: [512, "5", "height"],
      model: ["v1-5-pruned-emaonly-fp16.safetensors", "4", "ckpt_name"],
    });
  });

  it("Z-Image get-started: a subgraph without inputs keeps its inner values; its bypassed node is routed around", () => {
    const graph = convert("01_get_started_text_to_image.current");
    expect(graph["83:11"]).toBeUndefined(); // ModelSamplingAuraFlow, mode 4 inside the subgraph
    expect(graph["83:3"]!.inputs).toMatchObject({
      seed: 528562900154240,
      steps: 4,
      cfg: 1,
      sampler_name: "res_multistep",
      scheduler: "simple",
      model: ["83:28", 0],
    });
    expect(graph["60"]!.inputs.images).toEqual(["83:8", 0]);
    expect(Object.keys(summary("01_get_started_text_to_image.current"))).not.toContain("negative_prompt");
  });

  it('Qwen t2i: the instance\'s saved values (proxyWidgets "-1") reach the inner widgets they are promoted from', () => {
    const graph = convert("01_qwen_t2i_subgraphed.current");
    expect(graph["75:3"]!.inputs).toMatchObject({ seed: 1125488487853216, steps: 4, model: ["75:66", 0] });
    expect(graph["75:58"]!.inputs).toEqual({ width: 1328, height: 1328, batch_size: 1 });
    expect(graph["75:73"]!.inputs).toMatchObject({
      lora_name: "Qwen-Image-Lightning-4steps-V1.0.safetensors",
      model: ["75:37", 0],
    });
    expect(graph["75:37"]!.inputs.unet_name).toBe("qwen_image_fp8_e4m3fn.safetensors");
    expect(graph["75:6"]!.inputs.text).toMatch(/^Giant blue and purple big billboard/);
  });

  // ComfyUI's frontend gives a promoted input the inner widget's value unless the instance saved one
  // (SubgraphNode._setWidget registers the interior widget's value; _applyPromotedWidgetValues only
  // overrides it with values that were saved).
  it("an instance that saved no values takes them from the inner widgets, as the frontend does (Flux Krea)", () => {
    const graph = convert("flux1_krea_dev.current");
    expect(graph["53:45"]!.inputs.text).toMatch(/^Highly realistic portrait of a Nordic woman/);
    expect(graph["53:27"]!.inputs).toMatchObject({ width: 1024, height: 1024 });
    expect(graph["53:38"]!.inputs.unet_name).toBe("flux1-krea-dev_fp8_scaled.safetensors");
    expect(validateAgainst(graph, OBJECT_INFO).problems).toEqual([]);
  });
});

// --- small hand-made graphs: one rule each ------------------------------------------------------

type UiNode = Record<string, unknown> & { id: number; type: string };

function ui(nodes: UiNode[], links: unknown[][], extra: Record<string, unknown> = {}) {
  return { last_node_id: 99, last_link_id: 99, nodes, links, version: 0.4, ...extra };
}

/** A minimal SD 1.5 text-to-image graph; `change` edits it before conversion. */
function sd15(change: (nodes: UiNode[], links: unknown[][]) => void = () => {}) {
  const nodes: UiNode[] = [
    {
      id: 1,
      type: "CheckpointLoaderSimple",
      outputs: [
        { name: "MODEL", type: "MODEL" },
        { name: "CLIP", type: "CLIP" },
        { name: "VAE", type: "VAE" },
      ],
      widgets_values: ["sd15.safetensors"],
    },
    { id: 2, type: "CLIPTextEncode", inputs: [{ name: "clip", type: "CLIP", link: 2 }], widgets_values: ["a cat"] },
    { id: 3, type: "CLIPTextEncode", inputs: [{ name: "clip", type: "CLIP", link: 3 }], widgets_values: ["blurry"] },
    { id: 4, type: "EmptyLatentImage", widgets_values: [512, 512, 1] },
    {
      id: 5,
      type: "KSampler",
      inputs: [
        { name: "model", type: "MODEL", link: 1 },
        { name: "positive", type: "CONDITIONING", link: 4 },
        { name: "negative", type: "CONDITIONING", link: 5 },
        { name: "latent_image", type: "LATENT", link: 6 },
      ],
      widgets_values: [42, "fixed", 20, 7, "euler", "normal", 1],
    },
    {
      id: 6,
      type: "VAEDecode",
      inputs: [
        { name: "samples", type: "LATENT", link: 7 },
        { name: "vae", type: "VAE", link: 8 },
      ],
    },
    { id: 7, type: "SaveImage", inputs: [{ name: "images", type: "IMAGE", link: 9 }], widgets_values: ["out"] },
  ];
  const links: unknown[][] = [
    [1, 1, 0, 5, 0, "MODEL"],
    [2, 1, 1, 2, 0, "CLIP"],
    [3, 1, 1, 3, 0, "CLIP"],
    [4, 2, 0, 5, 1, "CONDITIONING"],
    [5, 3, 0, 5, 2, "CONDITIONING"],
    [6, 4, 0, 5, 3, "LATENT"],
    [7, 5, 0, 6, 0, "LATENT"],
    [8, 1, 2, 6, 1, "VAE"],
    [9, 6, 0, 7, 0, "IMAGE"],
  ];
  change(nodes, links);
  return ui(nodes, links);
}

function node(nodes: UiNode[], id: number): UiNode {
  return nodes.find((n) => n.id === id)!;
}

function ok(workflow: unknown): ComfyGraph {
  const result = convertUiWorkflow(workflow, OBJECT_INFO);
  if (!result.ok) throw new Error(result.problem);
  expect(validateAgainst(result.graph, OBJECT_INFO).problems).toEqual([]);
  return result.graph;
}

describe("conversion rules", () => {
  it("detects the format without guessing", () => {
    expect(detectFormat(sd15())).toBe("ui");
    expect(detectFormat({ "1": { class_type: "SaveImage", inputs: {} } })).toBe("api");
    expect(detectFormat({ nodes: [] })).toEqual({ problem: expect.stringMatching(/'nodes' and 'links'/) });
    expect(detectFormat({ "1": { inputs: {} } })).toEqual({ problem: expect.stringMatching(/neither format/) });
    expect(detectFormat([])).toEqual({ problem: expect.stringMatching(/not a JSON object/) });
  });

  it("maps widgets to inputs around the seed's control value, present or not", () => {
    expect(ok(sd15())["5"]!.inputs).toMatchObject({
      seed: 42,
      steps: 20,
      cfg: 7,
      sampler_name: "euler",
      scheduler: "normal",
      denoise: 1,
    });
    const without = ok(sd15((nodes) => (node(nodes, 5).widgets_values = [42, 20, 7, "euler", "normal", 1])));
    expect(without["5"]!.inputs).toMatchObject({ seed: 42, steps: 20, denoise: 1 });
    const oldToggle = ok(sd15((nodes) => (node(nodes, 5).widgets_values = [42, true, 20, 7, "euler", "normal", 1])));
    expect(oldToggle["5"]!.inputs).toMatchObject({ seed: 42, steps: 20 });
  });

  it("follows a reroute chain", () => {
    const graph = ok(
      sd15((nodes, links) => {
        nodes.push({
          id: 20,
          type: "Reroute",
          inputs: [{ name: "", type: "*", link: 20 }],
          outputs: [{ name: "", type: "MODEL" }],
        });
        nodes.push({
          id: 21,
          type: "Reroute",
          inputs: [{ name: "", type: "*", link: 21 }],
          outputs: [{ name: "", type: "MODEL" }],
        });
        links.splice(0, 1, [20, 1, 0, 20, 0, "MODEL"], [21, 20, 0, 21, 0, "MODEL"], [1, 21, 0, 5, 0, "MODEL"]);
      }),
    );
    expect(graph["5"]!.inputs.model).toEqual(["1", 0]);
    expect(graph["20"]).toBeUndefined();
  });

  it("writes a primitive's value into the widget it drives, and drops notes", () => {
    const graph = ok(
      sd15((nodes, links) => {
        nodes.push({
          id: 30,
          type: "PrimitiveNode",
          outputs: [{ name: "INT", type: "INT", widget: { name: "steps" } }],
          widgets_values: [33, "fixed"],
        });
        nodes.push({ id: 31, type: "MarkdownNote", widgets_values: ["# read me"] });
        node(nodes, 5).inputs = [
          ...(node(nodes, 5).inputs as object[]),
          { name: "steps", type: "INT", widget: { name: "steps" }, link: 30 },
        ];
        links.push([30, 30, 0, 5, 4, "INT"]);
      }),
    );
    expect(graph["5"]!.inputs.steps).toBe(33);
    expect(Object.keys(graph).sort()).toEqual(["1", "2", "3", "4", "5", "6", "7"]);
  });

  it("routes around a bypassed node by type and leaves out a muted branch", () => {
    const graph = ok(
      sd15((nodes, links) => {
        // A bypassed LoRA between checkpoint and sampler; its MODEL output passes its model input on.
        nodes.push({
          id: 40,
          type: "LoraLoader",
          mode: 4,
          inputs: [
            { name: "model", type: "MODEL", link: 40 },
            { name: "clip", type: "CLIP", link: null },
          ],
          outputs: [
            { name: "MODEL", type: "MODEL" },
            { name: "CLIP", type: "CLIP" },
          ],
          widgets_values: ["missing_lora.safetensors", 1, 1],
        });
        links.splice(0, 1, [40, 1, 0, 40, 0, "MODEL"], [1, 40, 0, 5, 0, "MODEL"]);
        // A muted upscale feeding a second SaveImage: both disappear, the first output stays.
        nodes.push({
          id: 41,
          type: "ImageInvert",
          mode: 2,
          inputs: [{ name: "image", type: "IMAGE", link: 41 }],
          outputs: [{ name: "IMAGE", type: "IMAGE" }],
        });
        nodes.push({
          id: 42,
          type: "SaveImage",
          inputs: [{ name: "images", type: "IMAGE", link: 42 }],
          widgets_values: ["inverted"],
        });
        links.push([41, 6, 0, 41, 0, "IMAGE"], [42, 41, 0, 42, 0, "IMAGE"]);
      }),
    );
    expect(graph["5"]!.inputs.model).toEqual(["1", 0]);
    expect(graph["40"]).toBeUndefined();
    expect(graph["41"]).toBeUndefined();
    expect(graph["42"]).toBeUndefined();
    expect(graph["7"]).toBeDefined();
    const notes = (convertUiWorkflow(sd15(), OBJECT_INFO) as { notes: string[] }).notes;
    expect(notes).toEqual([]);
  });

  it("expands a subgraph with its promoted widget and its linked inputs", () => {
    const subgraph = {
      id: "0b5e6c6e-0000-4000-8000-000000000001",
      name: "Prompt",
      inputs: [
        { name: "clip", type: "CLIP", linkIds: [101] },
        { name: "text", type: "STRING", linkIds: [102] },
      ],
      outputs: [{ name: "CONDITIONING", type: "CONDITIONING", linkIds: [103] }],
      nodes: [
        {
          id: 1,
          type: "CLIPTextEncode",
          inputs: [
            { name: "clip", type: "CLIP", link: 101 },
            { name: "text", type: "STRING", widget: { name: "text" }, link: 102 },
          ],
          outputs: [{ name: "CONDITIONING", type: "CONDITIONING", links: [103] }],
          widgets_values: ["inner default"],
        },
      ],
      links: [
        { id: 101, origin_id: -10, origin_slot: 0, target_id: 1, target_slot: 0, type: "CLIP" },
        { id: 102, origin_id: -10, origin_slot: 1, target_id: 1, target_slot: 1, type: "STRING" },
        { id: 103, origin_id: 1, origin_slot: 0, target_id: -20, target_slot: 0, type: "CONDITIONING" },
      ],
    };
    const workflow = sd15((nodes) => {
      const instance = node(nodes, 2);
      instance.type = subgraph.id;
      instance.widgets_values = ["a promoted cat"];
    });
    const graph = ok({ ...workflow, definitions: { subgraphs: [subgraph] } });
    expect(graph["2"]).toBeUndefined();
    expect(graph["2:1"]).toMatchObject({
      class_type: "CLIPTextEncode",
      inputs: { text: "a promoted cat", clip: ["1", 1] },
    });
    expect(graph["5"]!.inputs.positive).toEqual(["2:1", 0]);

    // Saved nothing (current templates): the inner widget's value stands.
    const unsaved = sd15((nodes) => Object.assign(node(nodes, 2), { type: subgraph.id, widgets_values: [] }));
    expect(ok({ ...unsaved, definitions: { subgraphs: [subgraph] } })["2:1"]!.inputs.text).toBe("inner default");
    // One value too many is refused, naming the instance and what it saved.
    const surplus = sd15((nodes) => Object.assign(node(nodes, 2), { type: subgraph.id, widgets_values: ["a", "b"] }));
    expect(convertUiWorkflow({ ...surplus, definitions: { subgraphs: [subgraph] } }, OBJECT_INFO)).toMatchObject({
      ok: false,
      problem: expect.stringMatching(/subgraph 'Prompt' has 1 widget inputs \(text\) but the instance saved 2 values/),
    });
  });

  it("refuses naming the node, its class, its title and why", () => {
    const unknown = convertUiWorkflow(
      sd15((nodes) => Object.assign(node(nodes, 6), { type: "FancyDecode", title: "My decoder" })),
      OBJECT_INFO,
    );
    expect(unknown).toMatchObject({
      ok: false,
      problem: expect.stringMatching(
        /^node 6 \(FancyDecode, "My decoder"\) class 'FancyDecode' does not exist on this backend/,
      ),
      refusals: [{ node_id: "6", class_type: "FancyDecode", title: "My decoder" }],
    });
    const shifted = convertUiWorkflow(
      sd15((nodes) => (node(nodes, 4).widgets_values = [512, 512, 1, 8])),
      OBJECT_INFO,
    );
    expect(shifted).toMatchObject({
      ok: false,
      problem: expect.stringMatching(
        /node 4 \(EmptyLatentImage\) has 4 saved widget values but EmptyLatentImage on this backend has 3 widgets/,
      ),
    });
    const dangling = convertUiWorkflow(
      sd15((_nodes, links) => links.splice(0, 1)),
      OBJECT_INFO,
    );
    expect(dangling).toMatchObject({
      ok: false,
      problem: expect.stringMatching(/node 5 \(KSampler\) input 'model': link 1 is used by a node but missing/),
    });
  });
});

describe("validateAgainst", () => {
  const base = () => ok(sd15());

  it("reports missing models apart, as not fatal", () => {
    const result = validateAgainst(base(), OBJECT_INFO);
    expect(result).toMatchObject({
      ok: true,
      missingModels: [
        { node_id: "1", class_type: "CheckpointLoaderSimple", input: "ckpt_name", value: "sd15.safetensors" },
      ],
    });
  });

  it("finds missing inputs, bad links, wrong types and combo values", () => {
    const graph = base();
    delete graph["4"]!.inputs.width;
    graph["6"]!.inputs.vae = ["1", 1]; // CLIP into a VAE input
    graph["5"]!.inputs.sampler_name = "no_such_sampler";
    // Only what an output needs is checked, as ComfyUI does: a second output carries the bad link.
    graph["8"] = { class_type: "SaveImage", inputs: { filename_prefix: "x", images: ["99", 0] } };
    const kinds = validateAgainst(graph, OBJECT_INFO).problems.map((p) => `${p.kind} ${p.node_id}.${p.input}`);
    expect(kinds.sort()).toEqual([
      "bad_link 8.images",
      "missing_input 4.width",
      "type_mismatch 6.vae",
      "value_not_in_list 5.sampler_name",
    ]);
    const unknown = validateAgainst({ "1": { class_type: "Nope", inputs: {} } }, OBJECT_INFO);
    expect(unknown.problems.map((p) => p.kind)).toEqual(["unknown_class"]);
  });
});
