/** How to reach one ComfyUI: what the client needs, nothing of the pool or the gateway's settings. */
export interface ComfyConnection {
  /** The backend's name in the pool ("default" for a single COMFYUI_URL). */
  name: string;
  /** Base URL without a trailing slash, e.g. `https://comfy.example.com`. */
  baseUrl: string;
  /** Headers sent on every request to ComfyUI, WebSocket upgrade included. */
  headers: Record<string, string>;
}
