/** Optimizers, gradient clipping, learning-rate schedules and weight EMA. */
export { Optimizer, normalizeParams, type NamedParam, type ParamList, type ParamGroup, type ParamGroupSpec, type ParamState, type ParamStateDict, type GroupStateDict, type OptimizerStateDict, type OptimizerStateDictInput, type StateValue } from './optimizer.js';
export { SGD, SGD_DEFAULTS, type SGDOptions } from './sgd.js';
export { Adam, AdamW, ADAM_DEFAULTS, ADAMW_DEFAULTS, type AdamOptions } from './adam.js';
export { clipGradNorm, gradNorm } from './clip.js';
export { paramGroupsNoDecay, isNoDecayParam } from './groups.js';
export { constantLr, constantWithWarmupLr, warmupCosineLr, schedules, Scheduler, type LrSchedule, type WarmupOptions, type CosineOptions, type SchedulerState } from './schedule.js';
export { EMA, type EMAOptions, type EMAState } from './ema.js';
