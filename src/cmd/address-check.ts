import { assertPortsFree } from "../common/port-check.js";
import { InvalidArgumentError, errorMessage } from "../errors.js";
import { splitHostPort } from "../server/rpc-server.js";

/**
 * Fails with one line (ListenError: the address, its holder, `flag` as the way out) when `address`
 * cannot be listened on, before a command starts anything. Port 0 (any free port) always passes.
 */
export async function assertAddressFree(address: string, what: string, flag: string): Promise<void> {
  let host: string;
  let port: number;
  try {
    const [h, p] = splitHostPort(address);
    [host, port] = [h, Number(p)];
  } catch (err) {
    throw new InvalidArgumentError(`${flag}: ${errorMessage(err)}`);
  }
  if (port === 0) return;
  await assertPortsFree([{ host, port, what, remedy: `stop that process, or pass another ${flag}` }]);
}
