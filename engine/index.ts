/** Public engine API (browser-safe: nothing here imports Node). */
import './tensor-methods.js';

export { Tensor, isTensor, type GradNode } from './tensor.js';
export type { Backend, Storage, BackendKind } from './backend.js';
export type { DType } from './dtype.js';
export * from './shape.js';
export { CpuBackend, cpuF64 } from './cpu/backend.js';
export { WebGPUBackend, ParamBuilder, type DispatchSpec } from './webgpu/backend.js';
export { getDevice, type DeviceOptions } from './device.js';
export { getBackend, setBackend } from './default-backend.js';
export { tidy, keep, memoryStats, type MemoryStats } from './scope.js';
export { noGrad, enableGrad, isGradEnabled } from './grad-mode.js';
export { backward, gradients, grad, valueAndGrad } from './autograd.js';
export * from './ops/creation.js';
export * from './ops/unary.js';
export * from './ops/binary.js';
export * from './ops/reduce.js';
export * from './ops/movement.js';
export * from './ops/matmul.js';
export * from './ops/softmax.js';
export * from './ops/norm.js';
export * from './ops/loss.js';
export * from './ops/indexing.js';
export * from './ops/conv.js';
export * from './ops/pool.js';
export * from './ops/vq.js';
export * from './ops/optim.js';
export * from './random.js';
