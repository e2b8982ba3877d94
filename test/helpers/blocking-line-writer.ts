import { writeSync } from "node:fs";

const pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * Writes `line` and a newline to `fd` before returning, for a child process whose parent reads what it
 * reports: a line written here survives a kill -9 the moment after. Not process.stdout: libuv makes a
 * pipe non-blocking and queues what the pipe cannot take at once, and a process killed with -9 loses
 * that queue. A process that never touches process.stdout keeps fd 1 blocking, so the write waits for
 * room; should something have made it non-blocking, a full pipe is waited out in 1 ms steps.
 */
export function writeLineBlocking(fd: number, line: string): void {
  const bytes = Buffer.from(`${line}\n`);
  let done = 0;
  while (done < bytes.length) {
    try {
      done += writeSync(fd, bytes, done);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EAGAIN") throw err;
      Atomics.wait(pause, 0, 0, 1);
    }
  }
}
