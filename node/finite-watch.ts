/**
 * Divergence detection for the training loop without a readback per step. Each step's loss terms
 * are folded into two kept device scalars: `alive` (1 until the first step with a NaN or an
 * infinity, then 0) and `count` (steps before that one). Reading `count` when the loop reads the
 * progress line anyway (or before a checkpoint) tells whether the window of steps since the last
 * read was clean and, if not, the first bad step: window start + count.
 *
 * The test is |sum of terms| <= FLT_MAX, false for NaN and for either infinity. WGSL lets a
 * compiler assume no NaN or Inf, so a driver might fold it to true; the loop therefore also checks
 * the host values it reads (terms on progress lines, weights before a save), where the answer is
 * exact and only the first bad step may be less precise ("between steps a and b").
 */
import * as E from '../engine/index.js';

const F32_MAX = 3.4028234663852886e38;

/** Training stopped at a non-finite loss or weights; the message names the steps and the last good checkpoint. */
export class NonFiniteError extends Error {
  override name = 'NonFiniteError';
}

export class FiniteWatch {
  private alive: E.Tensor | null = null;
  private count: E.Tensor | null = null;
  /** First step of the current window, and steps observed in it. */
  private start: number;
  private seen = 0;

  constructor(
    private readonly backend: E.Backend,
    firstStep: number,
  ) {
    this.start = firstStep;
  }

  /** Folds one step's loss terms (scalar tensors) into the flags; queues a few scalar kernels, reads nothing. */
  observe(terms: Record<string, E.Tensor>): void {
    const ts = Object.values(terms);
    this.seen++;
    const [alive, count] = E.noGrad(() =>
      E.tidy(() => {
        const a0 = this.alive ?? E.ones([], { backend: this.backend });
        const c0 = this.count ?? E.zeros([], { backend: this.backend });
        // A step without terms counts as clean: only the weights' check at the save can judge it.
        let a = a0;
        if (ts.length > 0) {
          let s = ts[0]!.sum();
          for (const t of ts.slice(1)) s = s.add(t.sum());
          a = a0.mul(E.le(E.abs(s), F32_MAX));
        }
        return [a, c0.add(a)];
      }),
    );
    if (alive !== this.alive) this.alive?.dispose();
    this.count?.dispose();
    this.alive = E.keep(alive!);
    this.count = E.keep(count!);
  }

  /**
   * Reads the window since the last read and starts a new one after `step`: null if every
   * observed step was finite (as far as the device can tell), else the first bad step.
   */
  async read(step: number): Promise<number | null> {
    const clean = this.count ? await this.count.item() : 0;
    const first = clean < this.seen ? this.start + clean : null;
    this.reset(step + 1);
    return first;
  }

  private reset(nextStep: number): void {
    this.alive?.dispose();
    this.count?.dispose();
    this.alive = this.count = null;
    this.start = nextStep;
    this.seen = 0;
  }

  dispose(): void {
    this.reset(this.start);
  }
}
