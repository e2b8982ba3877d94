/**
 * Builds the web console (console/) into dist/console: one minified ES module for the page, its
 * stylesheet and index.html. Every sentinel serves that directory at /ui/ (src/sentinel/console-routes.ts).
 * Prints the sizes (raw and gzip), which docs/console.md quotes.
 *
 *   node dist/scripts/build-console.js        (run by `npm run build`)
 */
import { copyFile, mkdir, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

export interface ConsoleBuild {
  /** The directory written. */
  outDir: string;
  /** Each file's size in bytes, raw and gzipped (what a browser downloads with compression). */
  files: { name: string; bytes: number; gzipBytes: number }[];
}

/** The repository root, from scripts/ (source) or dist/scripts/ (built). */
export function repoRoot(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  return path.basename(path.dirname(here)) === "dist"
    ? path.resolve(here, "../..")
    : path.resolve(here, "..");
}

export async function buildConsole(outDir = path.join(repoRoot(), "dist", "console")): Promise<ConsoleBuild> {
  const source = path.join(repoRoot(), "console");
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  await build({
    entryPoints: {
      console: path.join(source, "src", "main.ts"),
      "console-style": path.join(source, "console.css"),
    },
    outdir: outDir,
    bundle: true,
    minify: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    legalComments: "eof",
    logLevel: "warning",
    // The console's own settings (DOM lib); esbuild only strips types, `npm run build` type-checks.
    tsconfig: path.join(source, "tsconfig.json"),
  });
  // esbuild names a CSS entry after its key; the page links console.css.
  await copyFile(path.join(outDir, "console-style.css"), path.join(outDir, "console.css"));
  await rm(path.join(outDir, "console-style.css"));
  await copyFile(path.join(source, "index.html"), path.join(outDir, "index.html"));
  const files = [];
  for (const name of ["index.html", "console.js", "console.css"]) {
    const body = await readFile(path.join(outDir, name));
    files.push({ name, bytes: body.length, gzipBytes: gzipSync(body, { level: 9 }).length });
  }
  return { outDir, files };
}

const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const result = await buildConsole();
  const total = result.files.reduce(
    (sum, f) => ({ bytes: sum.bytes + f.bytes, gzip: sum.gzip + f.gzipBytes }),
    {
      bytes: 0,
      gzip: 0,
    },
  );
  for (const f of result.files)
    console.log(`console: ${f.name.padEnd(12)} ${kib(f.bytes).padStart(10)}  (${kib(f.gzipBytes)} gzip)`);
  console.log(
    `console: total        ${kib(total.bytes).padStart(10)}  (${kib(total.gzip)} gzip) in ${path.relative(process.cwd(), result.outDir)}`,
  );
}
