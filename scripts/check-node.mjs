// Guard run before every npm script that needs wrangler/vitest: they refuse Node < 22.12, and
// `npm ci --ignore-scripts` silently skips the pinned `node` devDependency's binary.
const [major, minor] = process.versions.node.split(".").map(Number);
if (major < 22 || (major === 22 && minor < 12)) {
  console.error(
    `comfyui-mcp-edge needs Node >= 22.12 but this script runs on ${process.version} (${process.execPath}).\n` +
      "The project pins Node 22 as the `node` devDependency; its binary is installed by npm's install scripts.\n" +
      "Fix: run `npm rebuild node` (or `npm ci` without --ignore-scripts), then run commands through `npm run`/`npx`.",
  );
  process.exit(1);
}
