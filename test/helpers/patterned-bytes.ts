/** Distinct, position-dependent bytes, so a misplaced or shifted piece cannot compare equal. */
export function patternedBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}
