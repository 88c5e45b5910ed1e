/**
 * Diffusion transformer training (browser-safe): the optimizer factory and one flow-matching step.
 * Follows DiT's train.py: AdamW, lr 1e-4, no weight decay, constant learning rate (here with an
 * optional linear warmup), and an EMA of the weights kept by the caller (nn/optim EMA: create it
 * after the model, call ema.update() after each step, sample with the shadow weights). Gradient
 * clipping at global norm 1 by default, as REPA / LightningDiT and the AR step do. The loss is
 * flow.ts's; the noise and times come from model.generator unless another generator is given, so
 * checkpointing model.generator's state (with the optimizer's) resumes a run exactly.
 */
import * as E from '../../engine/index.js';
import { AdamW, clipGradNorm, constantWithWarmupLr, paramGroupsNoDecay, Scheduler } from '../../nn/optim/index.js';
import { flowMatchingLoss, type FlowTimeOptions } from './flow.js';
import type { DiffusionTransformer } from './model.js';

export interface DiffusionOptimOptions {
  /** Learning rate (default 1e-4, DiT). */
  lr?: number;
  /** Default [0.9, 0.999] (DiT: AdamW defaults). */
  betas?: [number, number];
  /** Decoupled weight decay of the matrices (default 0, DiT); biases, norms and 1-D parameters get 0. */
  weightDecay?: number;
  /** Linear warmup steps, then constant (default 0). */
  warmupSteps?: number;
}

export function createDiffusionOptimizer(model: DiffusionTransformer, o: DiffusionOptimOptions = {}): { optimizer: AdamW; scheduler: Scheduler } {
  const lr = o.lr ?? 1e-4;
  const weightDecay = o.weightDecay ?? 0;
  const optimizer = new AdamW(paramGroupsNoDecay(model.namedParameters(), weightDecay), { lr, betas: o.betas ?? [0.9, 0.999], weightDecay });
  const warmupSteps = o.warmupSteps ?? 0;
  const scheduler = new Scheduler(optimizer, (step, base) => constantWithWarmupLr(step, base, { warmupSteps }));
  return { optimizer, scheduler };
}

export interface DiffusionStepOptions extends FlowTimeOptions {
  /** Advanced after the optimizer step. */
  scheduler?: Scheduler;
  /** Global gradient-norm clip (default 1; 0 or Infinity = off). */
  clipNorm?: number;
  /** Source of t and eps (default model.generator). */
  generator?: E.Generator;
}

export interface DiffusionStepResult extends Record<string, E.Tensor> {
  /** Flow-matching MSE, detached scalar. */
  loss: E.Tensor;
}

/**
 * One step on clean normalized latents x f32 [B, C, h, w] with labels y i32 [B] (class dropout
 * applies in training mode): flow-matching loss, backward, clip, AdamW step, schedule step, in its
 * own scope (the graph is freed on return); returns detached scalars: loss, gradNorm (when clipping).
 */
export function diffusionTrainStep(model: DiffusionTransformer, optimizer: AdamW, x: E.Tensor, y: E.Tensor, o: DiffusionStepOptions = {}): DiffusionStepResult {
  return E.tidy(() => {
    const loss = flowMatchingLoss(model, x, y, o.generator ?? model.generator, o);
    optimizer.zeroGrad();
    loss.backward();
    const clip = o.clipNorm ?? 1;
    const out: DiffusionStepResult = { loss: loss.detach() };
    if (clip > 0 && Number.isFinite(clip)) out.gradNorm = clipGradNorm(optimizer.paramGroups.flatMap((g) => g.params), clip).detach();
    optimizer.step();
    // A host effect: a captured step's replays advance the schedule too (E.captureStep).
    const scheduler = o.scheduler;
    if (scheduler) E.stepEffect(x.backend, () => scheduler.step());
    return out;
  });
}

/** The flow-matching loss (a scalar; intermediates freed) without gradient, in eval mode (no class dropout), with noise from `generator`. */
export function diffusionEvalLoss(model: DiffusionTransformer, x: E.Tensor, y: E.Tensor, generator: E.Generator, o: FlowTimeOptions = {}): E.Tensor {
  const was = model.training;
  model.eval();
  try {
    return E.noGrad(() => E.tidy(() => flowMatchingLoss(model, x, y, generator, o)));
  } finally {
    model.train(was);
  }
}
