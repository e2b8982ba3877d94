// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "src/gen/", "coverage/", "examples/**/dist/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["**/*.ts"],
    rules: {
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/consistent-type-imports": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "no-console": ["error", { allow: ["error"] }],
      "no-restricted-syntax": [
        "error",
        {
          // pino's err serializer keeps the type, code and stack; a message string loses them.
          selector: "Property[key.name='err'] > CallExpression[callee.name='errorMessage']",
          message: "Log the error itself under `err` (pino serializes it), not errorMessage(err).",
        },
      ],
    },
  },
  {
    files: ["src/cmd/**/*.ts", "bench/**/*.ts", "test/**/*.ts", "scripts/**/*.js", "scripts/**/*.ts"],
    rules: { "no-console": "off" },
  },
);
