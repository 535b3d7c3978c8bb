// Build: regenerate the protocol types from schemas/, bundle the SDK into one ES module
// (dist/entity-bridge.js, @msgpack/msgpack included, no other runtime dependency), emit the
// type declarations. `node build.mjs --console` also copies the bundle to where the bridge
// serves it (bridge/server/console/entity-bridge.js, committed, so the bridge needs no Node at
// run time); test/bundle.test.ts fails when that committed copy is not what this build makes.
import { execFileSync } from "node:child_process";
import { copyFileSync } from "node:fs";
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
if (process.argv.includes("--console")) {
  copyFileSync("dist/entity-bridge.js", "../../bridge/server/console/entity-bridge.js");
}
