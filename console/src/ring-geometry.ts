/** Where things sit on the drawn ring: pure functions of 64-bit ring positions. */

const TWO_POW_53 = 2 ** 53;

/** A 64-bit ring position as a fraction of the circle, 0 ≤ f < 1. */
export function fractionOf(position: bigint): number {
  return Number(position >> 11n) / TWO_POW_53;
}

/** x, y of a fraction of the circle at radius r around (c, c); 0 is at the top, clockwise. */
export function pointAt(fraction: number, r: number, c: number): [number, number] {
  const angle = fraction * 2 * Math.PI - Math.PI / 2;
  return [c + r * Math.cos(angle), c + r * Math.sin(angle)];
}

export interface VirtualNode {
  brokerId: string;
  position: bigint;
}

/** Every broker's virtual nodes in ring order. */
export function sortedNodes(
  brokers: readonly { brokerId: string; positions: readonly bigint[] }[],
): VirtualNode[] {
  const nodes = brokers.flatMap((b) => b.positions.map((position) => ({ brokerId: b.brokerId, position })));
  return nodes.sort((a, b) => (a.position < b.position ? -1 : a.position > b.position ? 1 : 0));
}

/**
 * The first virtual node of `brokerId` at or clockwise after `position` (wrapping): the point of the
 * ring where the placement walk, starting at a partition's key, met that replica.
 */
export function firstNodeOf(
  nodes: readonly VirtualNode[],
  brokerId: string,
  position: bigint,
): VirtualNode | undefined {
  let lo = 0;
  let hi = nodes.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((nodes[mid] as VirtualNode).position < position) lo = mid + 1;
    else hi = mid;
  }
  for (let step = 0; step < nodes.length; step++) {
    const node = nodes[(lo + step) % nodes.length] as VirtualNode;
    if (node.brokerId === brokerId) return node;
  }
  return undefined;
}
