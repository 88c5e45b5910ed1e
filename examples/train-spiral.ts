/**
 * The demo: trains an MLP on a 3-class 2-D spiral on the GPU and prints the loss.
 *   npm run demo:spiral     (STEPS=2000 by default)
 */
import { getDevice } from '../node/index.js';
import { trainSpiral } from './spiral.js';

const backend = await getDevice();
const steps = Number(process.env.STEPS ?? 2000);
console.log(`device: ${backend.name}; training a 2-64-64-3 MLP on the spiral for ${steps} steps (Adam, full batch of 300 points)`);
const result = await trainSpiral({
  backend,
  steps,
  logEvery: 100,
  onLog: ({ step, loss, accuracy, stepsPerSec, etaSec }) =>
    console.log(`step ${String(step).padStart(5)}/${steps}  loss ${loss.toFixed(4)}  accuracy ${(accuracy * 100).toFixed(1)}%  ${stepsPerSec.toFixed(1)} steps/s  ETA ${etaSec.toFixed(0)} s`),
});
console.log(`final loss ${result.finalLoss.toFixed(4)}, training accuracy ${(result.accuracy * 100).toFixed(1)}%`);
process.exit(0);
