/**
 * jax-js (@jax-js/jax) on its WebGPU device: `await init('webgpu')`, then `defaultDevice('webgpu')`.
 * jax-js is lazy and reference-counted: an op returns a pending array that runs when realized, and
 * disposing a pending array cancels its kernel. To submit an op without waiting we use its public
 * `gpuBufferSync()` (realizes + submits, then releases the array); to wait for the GPU we use
 * `getWebGPUDevice().queue.onSubmittedWorkDone()` (the same wait as our `backend.sync()`).
 * globalThis.navigator.gpu must be set before init().
 */
import type { Case, Lib, OverheadCase } from '../common.js';

type Jax = typeof import('@jax-js/jax');
type JArray = InstanceType<Jax['Array']>;

export async function loadJax(version: string): Promise<Lib> {
  const jax: Jax = await import('@jax-js/jax');
  const devices = await jax.init('webgpu');
  if (!devices.includes('webgpu')) throw new Error(`jax-js init: webgpu device unavailable (got ${JSON.stringify(devices)})`);
  jax.defaultDevice('webgpu');
  const np = jax.numpy;
  const device = jax.getWebGPUDevice();
  const sync = () => device.queue.onSubmittedWorkDone();
  const upload = async (data: Float32Array, shape: number[]): Promise<JArray> => {
    const arr = np.array(data as Float32Array<ArrayBuffer>, { dtype: np.float32 }).reshape(shape);
    return arr.blockUntilReady();
  };
  const read = async (arr: JArray): Promise<Float32Array> => Float32Array.from((await arr.data()) as ArrayLike<number>);
  const adapterInfo = (device as unknown as { adapterInfo?: GPUAdapterInfo }).adapterInfo;

  return {
    id: 'jax-js',
    label: `@jax-js/jax ${version}`,
    adapter: adapterInfo ? [adapterInfo.vendor, adapterInfo.architecture, adapterInfo.description || adapterInfo.device].filter(Boolean).join(' / ') : 'navigator.gpu.requestAdapter({powerPreference: "high-performance"})',

    async matmul(a, b, n) {
      const ja = await upload(a, [n, n]);
      const jb = await upload(b, [n, n]);
      return {
        async batch(reps) {
          for (let r = 0; r < reps; r++) np.matmul(ja.ref, jb.ref).gpuBufferSync();
          await sync();
        },
        async result() {
          return read(np.matmul(ja.ref, jb.ref));
        },
        dispose() {
          ja.dispose();
          jb.dispose();
        },
      } satisfies Case;
    },

    async add(a, b) {
      const ja = await upload(a, [a.length]);
      const jb = await upload(b, [b.length]);
      return {
        async batch(reps) {
          for (let r = 0; r < reps; r++) np.add(ja.ref, jb.ref).gpuBufferSync();
          await sync();
        },
        async result() {
          return read(np.add(ja.ref, jb.ref));
        },
        dispose() {
          ja.dispose();
          jb.dispose();
        },
      } satisfies Case;
    },

    async overhead(x) {
      const jx = await upload(x, [x.length]);
      return {
        record(count) {
          for (let i = 0; i < count; i++) np.add(jx.ref, jx.ref).gpuBufferSync();
        },
        sync,
        dispose() {
          jx.dispose();
        },
      } satisfies OverheadCase;
    },
  };
}
