// Build: regenerate the protocol types from schemas/, bundle the SDK into one ES module
// (dist/entity-bridge.js, @msgpack/msgpack included, no other runtime dependency), emit the
// type declarations, and copy the bundle to where the bridge serves it from (if that folder
// exists), so the bridge needs no Node at run time.
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync } from "node:fs";
import { build } from "esbuild";

execFileSync(process.execPath, ["scripts/gen-types.mjs"], { stdio: "inherit" });
await build({
  entryPoints: ["src/index.ts"],
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  legalComments: "eof",
  outfile: "dist/entity-bridge.js",
  logLevel: "warning",
});
execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.json"], { stdio: "inherit" });
for (const target of process.env.EB_BUNDLE_TARGETS ? process.env.EB_BUNDLE_TARGETS.split(":") : []) {
  if (existsSync(target)) copyFileSync("dist/entity-bridge.js", `${target}/entity-bridge.js`);
}
