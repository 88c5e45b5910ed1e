/**
 * TensorFlow.js: @tensorflow/tfjs-core with @tensorflow/tfjs-backend-webgpu (the parts of the
 * `@tensorflow/tfjs` umbrella package that matter here), selected with tf.setBackend('webgpu').
 * globalThis.navigator.gpu must be set before this module is imported: the backend registers
 * itself at import time only when navigator.gpu exists.
 */
import type { Case, Lib, OverheadCase } from '../common.js';

type TF = typeof import('@tensorflow/tfjs-core');

/** The parts of tfjs-backend-webgpu's WebGPUBackend used to flush and wait (not in its public types). */
interface TfWebGPUBackend {
  device: GPUDevice;
  commandEncoder: GPUCommandEncoder | null;
  adapterInfo?: { vendor?: string; architecture?: string; description?: string; device?: string };
  endComputePassEncoder(): void;
  submitQueue(): void;
}

export async function loadTfjs(): Promise<Lib> {
  const tf: TF = await import('@tensorflow/tfjs-core');
  await import('@tensorflow/tfjs-backend-webgpu');
  if (!(await tf.setBackend('webgpu'))) throw new Error("tf.setBackend('webgpu') returned false");
  await tf.ready();
  const be = tf.backend() as unknown as TfWebGPUBackend;
  const info = be.adapterInfo;

  /** Submits tfjs's pending command encoder (it batches up to 15 dispatches) and waits for the GPU. */
  async function sync(): Promise<void> {
    if (be.commandEncoder) {
      be.endComputePassEncoder();
      be.submitQueue();
    }
    await be.device.queue.onSubmittedWorkDone();
  }

  function submitOnly(): void {
    if (be.commandEncoder) {
      be.endComputePassEncoder();
      be.submitQueue();
    }
  }

  return {
    id: 'tfjs',
    label: `@tensorflow/tfjs-core+tfjs-backend-webgpu ${tf.version_core}`,
    adapter: [info?.vendor, info?.architecture, info?.description || info?.device].filter(Boolean).join(' / ') || 'unknown',

    async matmul(a, b, n) {
      const ta = tf.tensor2d(a, [n, n], 'float32');
      const tb = tf.tensor2d(b, [n, n], 'float32');
      return {
        async batch(reps) {
          for (let r = 0; r < reps; r++) tf.matMul(ta, tb).dispose();
          await sync();
        },
        async result() {
          const c = tf.matMul(ta, tb);
          const d = (await c.data()) as Float32Array;
          c.dispose();
          return d;
        },
        dispose() {
          ta.dispose();
          tb.dispose();
        },
      } satisfies Case;
    },

    async add(a, b) {
      const ta = tf.tensor1d(a, 'float32');
      const tb = tf.tensor1d(b, 'float32');
      return {
        async batch(reps) {
          for (let r = 0; r < reps; r++) tf.add(ta, tb).dispose();
          await sync();
        },
        async result() {
          const c = tf.add(ta, tb);
          const d = (await c.data()) as Float32Array;
          c.dispose();
          return d;
        },
        dispose() {
          ta.dispose();
          tb.dispose();
        },
      } satisfies Case;
    },

    async overhead(x) {
      const tx = tf.tensor1d(x, 'float32');
      // Upload once so the ops below run on the GPU (tfjs forwards small ops on CPU-resident data to the CPU).
      tf.add(tx, tx).dispose();
      await sync();
      return {
        record(count) {
          for (let i = 0; i < count; i++) tf.add(tx, tx).dispose();
          submitOnly();
        },
        sync,
        dispose() {
          tx.dispose();
        },
      } satisfies OverheadCase;
    },
  };
}
