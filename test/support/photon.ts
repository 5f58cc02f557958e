// Decoding helper for tests that inspect encoder output with the real photon wasm.
import { PhotonImage } from "@cf-wasm/photon";

export function decodePixels(bytes: Uint8Array): { width: number; height: number; pixels: Uint8Array } {
  const image = PhotonImage.new_from_byteslice(bytes);
  try {
    return { width: image.get_width(), height: image.get_height(), pixels: image.get_raw_pixels() };
  } finally {
    image.free();
  }
}
