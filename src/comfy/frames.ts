/**
 * Binary WebSocket frames (comfyui-api.md §8.5): a big-endian uint32 event type, then a payload.
 * Type 1 = preview image (uint32 format, then JPEG/PNG bytes), type 3 = progress text from a node
 * (uint32 length, node id, text), type 4 = preview image with JSON metadata naming the prompt.
 */

export type BinaryFrame =
  | { kind: "preview"; mime: string; bytes: number; prompt_id?: string; node_id?: string }
  | { kind: "text"; node_id: string; text: string }
  | { kind: "unknown"; type: number };

const PREVIEW_FORMATS: Record<number, string> = { 1: "image/jpeg", 2: "image/png" };

export function parseBinaryFrame(buffer: ArrayBuffer): BinaryFrame | undefined {
  if (buffer.byteLength < 8) return undefined;
  const view = new DataView(buffer);
  const type = view.getUint32(0);
  const decoder = new TextDecoder();
  switch (type) {
    case 1:
      return {
        kind: "preview",
        mime: PREVIEW_FORMATS[view.getUint32(4)] ?? "application/octet-stream",
        bytes: buffer.byteLength - 8,
      };
    case 3: {
      const length = view.getUint32(4);
      if (8 + length > buffer.byteLength) return undefined;
      return {
        kind: "text",
        node_id: decoder.decode(new Uint8Array(buffer, 8, length)),
        text: decoder.decode(new Uint8Array(buffer, 8 + length)),
      };
    }
    case 4: {
      const length = view.getUint32(4);
      if (8 + length > buffer.byteLength) return undefined;
      try {
        const meta = JSON.parse(decoder.decode(new Uint8Array(buffer, 8, length))) as Record<string, unknown>;
        return {
          kind: "preview",
          mime: typeof meta.image_type === "string" ? meta.image_type : "image/jpeg",
          bytes: buffer.byteLength - 8 - length,
          prompt_id: typeof meta.prompt_id === "string" ? meta.prompt_id : undefined,
          node_id: typeof meta.node_id === "string" ? meta.node_id : undefined,
        };
      } catch {
        return undefined;
      }
    }
    default:
      return { kind: "unknown", type };
  }
}
