/**
 * Graceful stop of a training loop. A stop request is an AbortSignal (tests abort a controller);
 * the CLI adds process signals: while the loop runs, the first SIGINT or SIGTERM aborts the
 * request (the loop finishes its step, saves and throws TrainingStopped), a second one exits at
 * once with the conventional code (128 + signal number). The handlers exist only during the loop,
 * so Ctrl-C while loading data still ends the process at once, and many loops in one process
 * (tests) leave no listeners behind.
 */

const EXIT_CODES = { SIGINT: 130, SIGTERM: 143 } as const;
export type StopSignalName = keyof typeof EXIT_CODES;

/** The loop stopped on request after saving (or with nothing to save); the CLI exits with `exitCode`. */
export class TrainingStopped extends Error {
  override name = 'TrainingStopped';
  readonly exitCode: number;
  constructor(
    message: string,
    readonly reason: string,
    /** The checkpoint written at the stop, or null when the loop has no checkpoint path. */
    readonly checkpoint: string | null,
    readonly step: number,
  ) {
    super(message);
    this.exitCode = reason === 'SIGTERM' ? EXIT_CODES.SIGTERM : EXIT_CODES.SIGINT;
  }
}

/** What stopped the loop: the signal name, or 'stop request' for an abort without one. */
export function stopReason(signal: AbortSignal): string {
  return typeof signal.reason === 'string' && signal.reason in EXIT_CODES ? signal.reason : 'stop request';
}

/**
 * Installs SIGINT/SIGTERM handlers that abort the returned signal (first signal; `onFirst` says so
 * to the user) or exit the process (second); call `remove` when the loop ends.
 */
export function signalStop(onFirst: (name: StopSignalName) => void): { signal: AbortSignal; remove: () => void } {
  const ctrl = new AbortController();
  const handlers = (Object.keys(EXIT_CODES) as StopSignalName[]).map((name) => {
    const h = () => {
      if (ctrl.signal.aborted) process.exit(EXIT_CODES[name]);
      ctrl.abort(name);
      onFirst(name);
    };
    process.on(name, h);
    return [name, h] as const;
  });
  return { signal: ctrl.signal, remove: () => handlers.forEach(([name, h]) => process.off(name, h)) };
}

/** Aborted when any of `signals` is. */
export function anyStop(signals: (AbortSignal | undefined)[]): AbortSignal {
  const present = signals.filter((s): s is AbortSignal => s !== undefined);
  return present.length === 1 ? present[0]! : AbortSignal.any(present);
}
