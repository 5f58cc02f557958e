/**
 * RGBA pixel helpers shared by the thumbnail and publish encoders: resizing premultiplied pixels
 * keeps transparent pixels' hidden colour from bleeding into the edges.
 */

export function hasTranslucency(pixels: Uint8Array): boolean {
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i]! < 255) return true;
  return false;
}

/** Premultiplies in place. */
export function premultiply(pixels: Uint8Array): void {
  for (let i = 0; i < pixels.length; i += 4) {
    const a = pixels[i + 3]!;
    if (a === 255) continue;
    pixels[i] = Math.round((pixels[i]! * a) / 255);
    pixels[i + 1] = Math.round((pixels[i + 1]! * a) / 255);
    pixels[i + 2] = Math.round((pixels[i + 2]! * a) / 255);
  }
}

/** A straight-alpha copy of premultiplied pixels. */
export function unpremultiplied(pixels: Uint8Array): Uint8Array {
  const out = new Uint8Array(pixels.length);
  for (let i = 0; i < pixels.length; i += 4) {
    const a = pixels[i + 3]!;
    out[i + 3] = a;
    if (a === 0) continue;
    out[i] = Math.min(255, Math.round((pixels[i]! * 255) / a));
    out[i + 1] = Math.min(255, Math.round((pixels[i + 1]! * 255) / a));
    out[i + 2] = Math.min(255, Math.round((pixels[i + 2]! * 255) / a));
  }
  return out;
}
