/**
 * Panel 1: live tokenizer training. Train starts a run (or continues the stopped one), Stop ends
 * it after the current step, Reset drops it; the loss curve redraws every step and the
 * reconstructions (clean, or from perturbed latents with the toggle) at most every RECON_MS. The
 * loss values are also kept on the chart's data-losses attribute (JSON) for scripts and tests.
 */
import type * as E from '../../../engine/index.js';
import { firstOfEachClass, gather, type PlaygroundData } from './data.js';
import { drawGrid, drawLossChart } from './render.js';
import { TrainSession, type StepReport } from './train.js';
import { byId, download, numberInput, showError } from './ui.js';

/** Reconstructions redraw at most this often, and take at most a fifth of the time (slow devices train more). */
const RECON_MS = 1500;

export class TrainPanel {
  private session: TrainSession | null = null;
  private readonly inputs: Float32Array;
  private readonly inputIndices: number[];
  private lastRecon = 0;
  private reconCost = 0;
  private runPromise: Promise<void> = Promise.resolve();

  private readonly chart = byId<HTMLCanvasElement>('loss-chart');
  private readonly recon = byId<HTMLCanvasElement>('recon');
  private readonly status = byId('train-status');
  private readonly startBtn = byId<HTMLButtonElement>('train-start');
  private readonly stopBtn = byId<HTMLButtonElement>('train-stop');
  private readonly resetBtn = byId<HTMLButtonElement>('train-reset');
  private readonly saveBtn = byId<HTMLButtonElement>('train-save');

  constructor(private backend: E.Backend, private readonly data: PlaygroundData) {
    this.inputIndices = firstOfEachClass(data, 1);
    this.inputs = gather(data, this.inputIndices);
    this.startBtn.onclick = () => (this.runPromise = this.start());
    this.stopBtn.onclick = () => this.session?.stop();
    this.resetBtn.onclick = () => this.reset();
    this.saveBtn.onclick = () => void this.save();
    const redraw = () => void this.drawRecon(true);
    byId('recon-perturb').onchange = redraw;
    byId('recon-delta').onchange = redraw;
    this.reset();
  }

  /** Moves to another device once the current step ends: the run is dropped (its tensors live on the old one). */
  async setBackend(backend: E.Backend): Promise<void> {
    this.session?.stop();
    await this.runPromise;
    this.backend = backend;
    this.reset();
  }

  get running(): boolean {
    return this.session?.running ?? false;
  }

  private setButtons(): void {
    const running = this.running;
    this.startBtn.disabled = running;
    this.startBtn.textContent = this.session && this.session.step > 0 ? 'Continue' : 'Train';
    this.stopBtn.disabled = !running;
    this.resetBtn.disabled = running || !this.session || this.session.step === 0;
    this.saveBtn.disabled = running || !this.session || this.session.step === 0;
  }

  reset(): void {
    if (this.running) return;
    this.session?.dispose();
    this.session = null;
    this.status.textContent = 'ready: press Train';
    this.status.dataset.step = '0';
    this.chart.dataset.losses = '[]';
    drawLossChart(this.chart, []);
    drawGrid(this.recon, this.inputs, this.inputIndices.length, this.data.size, this.inputIndices.length);
    this.setButtons();
  }

  private async start(): Promise<void> {
    try {
      if (!this.session) {
        const settings = {
          batch: numberInput('train-batch', 'Batch', { integer: true }),
          lr: numberInput('train-lr', 'Learning rate'),
          steps: numberInput('train-steps', 'Planned steps', { integer: true }),
          perturb: byId<HTMLInputElement>('train-perturb').checked,
          seed: 0,
        };
        this.session = new TrainSession(this.backend, this.data, settings);
      }
      const s = this.session;
      this.status.textContent = `step ${s.step}: running the first step (compiling kernels)...`;
      const run = s.run((r) => this.onStep(r));
      this.setButtons();
      await run;
      this.status.textContent = `stopped after step ${s.step} (loss ${s.losses.total.at(-1)?.toFixed(4) ?? '-'}): Continue or Reset`;
      await this.drawRecon(true);
    } catch (e) {
      showError(e, 'training');
      this.status.textContent = 'training failed (see the message above)';
    } finally {
      this.setButtons();
    }
  }

  private async onStep(r: StepReport): Promise<void> {
    const s = this.session!;
    const capture = s.captureStatus;
    this.status.textContent = `step ${r.step} | loss ${r.total.toFixed(4)} (rec ${r.rec.toFixed(4)}) | ${r.msPerStep.toFixed(0)} ms/step${capture.mode === 'replay' ? ' (replayed)' : ''}`;
    this.status.dataset.step = String(r.step);
    this.status.dataset.capture = capture.mode;
    this.chart.dataset.losses = JSON.stringify(s.losses.total);
    drawLossChart(this.chart, [
      { name: 'total', color: '#6ea8fe', values: s.losses.total },
      { name: 'rec', color: '#f3a35c', values: s.losses.rec },
    ]);
    await this.drawRecon(false);
  }

  /** Inputs on top, reconstructions below; unless forced, skipped while too recent (RECON_MS, or 4x its own cost). */
  private async drawRecon(force: boolean): Promise<void> {
    const s = this.session;
    if (!s || s.step === 0 || (!force && performance.now() - this.lastRecon < Math.max(RECON_MS, 4 * this.reconCost))) return;
    const t0 = performance.now();
    try {
      const delta = byId<HTMLInputElement>('recon-perturb').checked ? numberInput('recon-delta', 'delta', { integer: true }) : null;
      const n = this.inputIndices.length;
      const rec = await s.reconstruct(this.inputs, n, delta);
      const both = new Float32Array(2 * this.inputs.length);
      both.set(this.inputs);
      both.set(rec, this.inputs.length);
      drawGrid(this.recon, both, 2 * n, this.data.size, n);
      this.recon.dataset.step = String(s.step);
      this.recon.dataset.perturbed = delta === null ? 'no' : String(delta);
      this.lastRecon = performance.now();
      this.reconCost = this.lastRecon - t0;
    } catch (e) {
      showError(e, 'reconstruction');
    }
  }

  private async save(): Promise<void> {
    try {
      const s = this.session!;
      download(await s.checkpoint(), `playground-tokenizer-step${s.step}.safetensors`);
    } catch (e) {
      showError(e, 'saving the checkpoint');
    }
  }
}
