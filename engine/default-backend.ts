/** The backend that creation ops use when none is given. Starts as the float32 CPU backend. */
import type { Backend } from './backend.js';
import { CpuBackend } from './cpu/backend.js';

let current: Backend = new CpuBackend();

export function getBackend(): Backend {
  return current;
}

export function setBackend(b: Backend): Backend {
  current = b;
  return b;
}
