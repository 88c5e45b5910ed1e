/**
 * Live tokenizer training in the page: the steps of node/train-tokenizer.ts (AdamW with betas
 * 0.5, 0.9; tokenizerTrainStep with the perturbation's annealing over the planned steps) on the
 * bundled images, one step per turn of the event loop, so the page repaints and Stop is heard
 * between steps. Steps are captured and replayed (E.captureStep, keyed by the annealing phase:
 * the same numbers as eager steps, a fraction of the page's JavaScript per step). The run can be saved in the CLI's checkpoint layout (model.*, optim.*, the
 * config in `extra`): `webgpu-tok eval-tokenizer` and `train-ar --tokenizer` read it.
 */
import * as E from '../../../engine/index.js';
import { AdamW, saveTrainingState } from '../../../nn/index.js';
import { tokenizerStepKey, tokenizerTrainStep, VQTokenizer, type TokenizerConfig, type TokenizerStepOptions } from '../../../models/tokenizer/index.js';
import { BatchSampler, gather, type PlaygroundData } from './data.js';

/** The live model: the shipped tokenizer's size (tools/tokenizer-config.json), 8x8 tokens of 128 codes. */
export const LIVE_TOKENIZER: Partial<TokenizerConfig> = { ch: 8, chMult: [1, 2, 2], numResBlocks: 1, codebookSize: 128, codeDim: 8 };

export interface TrainSettings {
  batch: number;
  lr: number;
  /** Planned steps (the perturbation's annealing schedule runs over them); training may go past them. */
  steps: number;
  /** Train with the RobusTok latent perturbation ('paper' preset), as `--perturb paper`. */
  perturb: boolean;
  seed: number;
}

export interface StepReport {
  step: number;
  total: number;
  rec: number;
  msPerStep: number;
}

export class TrainSession {
  readonly model: VQTokenizer;
  readonly optimizer: AdamW;
  readonly losses: { total: number[]; rec: number[] } = { total: [], rec: [] };
  step = 0;
  running = false;
  private stopRequested = false;
  private readonly batches: BatchSampler;
  /** The training step, captured once two recorded steps agree. */
  private readonly trainStep: E.CapturedStep<[E.Tensor], Record<string, E.Tensor>>;
  /** The schedule position of the step being run. */
  private stepOptions: TokenizerStepOptions = {};

  constructor(readonly backend: E.Backend, readonly data: PlaygroundData, readonly settings: TrainSettings) {
    this.model = new VQTokenizer({ ...LIVE_TOKENIZER, perturbation: settings.perturb ? 'paper' : 'none', perturbSeed: settings.seed }, { backend, generator: new E.Generator(settings.seed) });
    this.optimizer = new AdamW(this.model.parameters(), { lr: settings.lr, betas: [0.5, 0.9], weightDecay: 0 });
    this.batches = new BatchSampler(data.count, settings.seed + 1);
    this.trainStep = E.captureStep((x: E.Tensor) => tokenizerTrainStep(this.model, this.optimizer, x, this.stepOptions), { key: () => tokenizerStepKey(this.stepOptions) });
  }

  /** How the last step ran ('replay' once captured) and why it is eager, if it is. */
  get captureStatus(): { mode: string; reason: string | null } {
    return { mode: this.trainStep.mode, reason: this.trainStep.reason };
  }

  /** Trains until stop() (after the current step); onStep runs after every step, awaited. */
  async run(onStep: (r: StepReport) => void | Promise<void>): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.stopRequested = false;
    const { batch, steps } = this.settings;
    const S = this.data.size;
    try {
      while (!this.stopRequested) {
        const t0 = performance.now();
        const step = this.step + 1;
        this.model.train();
        this.stepOptions = { step: Math.min(step, steps), totalSteps: steps };
        const terms = E.tidy(() => {
          const x = E.tensor(gather(this.data, this.batches.next(batch)), [batch, 1, S, S], { backend: this.backend });
          return this.trainStep(x);
        });
        let total: number, rec: number;
        try {
          [total, rec] = await Promise.all([terms.total!.item(), terms.rec!.item()]);
        } finally {
          E.disposeAll(terms);
        }
        if (!Number.isFinite(total)) throw new Error(`training diverged at step ${step} (loss ${total}): lower the learning rate and reset`);
        this.step = step;
        this.losses.total.push(total);
        this.losses.rec.push(rec);
        await onStep({ step, total, rec, msPerStep: performance.now() - t0 });
        await new Promise((r) => setTimeout(r, 0));
      }
    } finally {
      this.running = false;
    }
  }

  stop(): void {
    this.stopRequested = true;
  }

  /**
   * Reconstructions of `x` [B, 1, S, S]: clean, or with every image's tokens perturbed (alpha 1,
   * `delta` nearest codes; a fixed generator, so the picture changes only as the model does).
   */
  async reconstruct(x: Float32Array, count: number, perturbDelta: number | null): Promise<Float32Array> {
    const S = this.data.size;
    this.model.eval();
    const r = E.tidy(() => {
      const xt = E.tensor(x, [count, 1, S, S], { backend: this.backend });
      return this.model.reconstruct(xt, perturbDelta === null ? null : { alpha: 1, delta: perturbDelta }, new E.Generator(7));
    });
    try {
      return Float32Array.from(await r.toArray());
    } finally {
      r.dispose();
      this.model.train();
    }
  }

  /** The run as a CLI checkpoint file (train-tokenizer's layout and `extra` fields). */
  checkpoint(): Promise<Uint8Array> {
    const state = { model: this.model, optimizer: this.optimizer, generators: { perturb: this.model.perturbGenerator } };
    return saveTrainingState(state, this.step, { config: this.model.cfg, batchSize: this.settings.batch, dataset: 'fashion-mnist', totalSteps: this.settings.steps, source: 'playground' });
  }

  dispose(): void {
    this.trainStep.dispose();
    this.optimizer.dispose();
    this.model.dispose();
  }
}
