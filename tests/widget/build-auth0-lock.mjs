// Bundles auth0-lock 14 (published as CommonJS sources only) into one browser script:
//   node build-auth0-lock.mjs OUTFILE        (called by tests/widget/conftest.py)
// auth0-js 9 marks its package "type": "module" while its dist files are UMD, so a bundler
// takes them for ES modules and Lock's require("auth0-js") finds nothing. The plugin loads
// those files from a namespace of their own, where they are read as the CommonJS they are.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const lockRequire = createRequire(join(here, "node_modules", "auth0-lock", "lib", "index.js"));

const umdAuth0Js = {
  name: "umd-auth0-js",
  setup(b) {
    b.onResolve({ filter: /^auth0-js(\/dist\/.*)?$/ }, (args) => {
      const target = args.path === "auth0-js" ? "auth0-js/dist/auth0.min.js" : args.path;
      return { path: lockRequire.resolve(target), namespace: "umd" };
    });
    b.onLoad({ filter: /.*/, namespace: "umd" }, async (args) => ({
      contents: await readFile(args.path, "utf8"),
      loader: "js",
      resolveDir: dirname(args.path),
    }));
  },
};

await build({
  entryPoints: [join(here, "pages", "auth0-lock-entry.js")],
  bundle: true,
  format: "iife",
  outfile: process.argv[2],
  define: { "process.env.NODE_ENV": '"production"', global: "window" },
  plugins: [umdAuth0Js],
  logLevel: "warning",
});
