/**
 * A signal of its own for one call or wait, aborted with `parent`. Connect adds an "abort" listener to
 * the signal of each call in flight (and a wait adds one too): concurrent calls on one long-lived
 * signal, such as a commit round over every partition, pass Node's limit of 10 listeners and print
 * MaxListenersExceededWarning. AbortSignal.any follows `parent` without adding a listener to it.
 */
export function callSignal(parent: AbortSignal): AbortSignal {
  return AbortSignal.any([parent]);
}
