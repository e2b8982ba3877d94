import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

/** End of life of the Node.js LTS lines (https://nodejs.org/en/about/previous-releases). */
const LTS_END_OF_LIFE: Record<number, string> = {
  20: "2026-04-30",
  22: "2027-04-30",
  24: "2028-04-30",
  26: "2029-04-30",
};

describe("Dockerfile", () => {
  const dockerfile = readFileSync(path.join(ROOT, "Dockerfile"), "utf8");
  const image = /^ARG NODE_IMAGE=(\S+)$/m.exec(dockerfile)?.[1];

  it("builds every stage on the NODE_IMAGE argument", () => {
    assert.ok(image, "an ARG NODE_IMAGE=… line");
    const froms = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    assert.ok(froms.length > 0);
    for (const from of froms) assert.equal(from, "${NODE_IMAGE}");
  });

  it("uses a Node.js LTS line that is still supported", () => {
    const major = Number(/^node:(\d+)[-.]/.exec(image ?? "")?.[1]);
    const endOfLife = LTS_END_OF_LIFE[major];
    assert.ok(endOfLife, `${image} is not a known LTS line (${Object.keys(LTS_END_OF_LIFE).join(", ")})`);
    assert.ok(
      Date.now() < Date.parse(`${endOfLife}T00:00:00Z`),
      `Node ${major} reached end of life on ${endOfLife}: move ${image} to a supported LTS`,
    );
  });

  it("uses a line the package supports (engines)", () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as {
      engines: { node: string };
    };
    const minimum = Number(/>=\s*(\d+)/.exec(pkg.engines.node)?.[1]);
    const major = Number(/^node:(\d+)/.exec(image ?? "")?.[1]);
    assert.ok(major >= minimum, `${image} is older than engines ${pkg.engines.node}`);
  });

  it("builds the web console and ships it where the sentinels serve it from (dist/console)", () => {
    assert.match(dockerfile, /^COPY console \.\/console$/m);
    assert.match(dockerfile, /^COPY scripts\/build-console\.ts /m);
    assert.match(dockerfile, /^COPY --from=build \/src\/dist\/console \.\/dist\/console$/m);
    const pkg = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as {
      files: string[];
      scripts: Record<string, string>;
    };
    assert.ok(pkg.files.includes("dist/console"), "the npm package ships the console");
    assert.match(pkg.scripts.build ?? "", /build-console/);
  });
});
