#!/usr/bin/env node
import { ConnectError } from "@connectrpc/connect";
import { stopWhenParentDies } from "../common/parent-watch.js";
import { GouletteError, errorMessage } from "../errors.js";
import { runAdmin } from "./admin.js";
import { runDev } from "./dev.js";
import { runBroker } from "./broker.js";
import { runCompletion } from "./completion.js";
import { runConsume } from "./consume.js";
import { runProduce } from "./produce.js";
import { runSentinel } from "./sentinel.js";

const USAGE = `goulette — a distributed message queue with an etcd control plane

Usage: goulette <command> [options]   (goulette <command> --help for its options)

  sentinel    run a control-plane node (etcd external or embedded)
  broker      run a broker (partition logs, produce, pull, replication)
  dev         embedded etcd + 3 sentinels + 3 brokers on loopback, one command
  admin       status | topics | operations | snapshot | groups | reset-offsets | delete-offsets
  produce     produce messages (arguments or stdin lines) to a topic
  consume     consume topics: as a member of a consumer group (--group), or only read
  completion  bash | zsh: print a shell completion script
`;

const commands: Record<string, (argv: string[]) => Promise<void>> = {
  sentinel: runSentinel,
  broker: runBroker,
  admin: runAdmin,
  dev: runDev,
  produce: runProduce,
  consume: runConsume,
  completion: runCompletion,
};

async function main(): Promise<void> {
  // A child of `goulette dev` stops when dev is gone, however dev died.
  stopWhenParentDies();
  const [command, ...rest] = process.argv.slice(2);
  if (!command || command === "--help" || command === "-h" || command === "help") {
    console.log(USAGE);
    return;
  }
  const run = commands[command];
  if (!run) {
    console.error(`goulette: unknown command '${command}'\n\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  await run(rest);
}

main().catch((err: unknown) => {
  // Errors a person can act on are printed as one line, without a stack.
  if (err instanceof GouletteError || err instanceof ConnectError) {
    console.error(`goulette: ${errorMessage(err)}`);
  } else {
    console.error(err);
  }
  process.exit(1);
});
