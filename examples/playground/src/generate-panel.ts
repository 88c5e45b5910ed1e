/**
 * Panel 2: checkpoints and sampling. Files come from the picker, a drop, or the shipped defaults
 * (public/pretrained/); each is recognized from its metadata and takes its slot: a VQ tokenizer,
 * a KL tokenizer, an AR generator, a DiT. A generator samples a grid of `perClass` images per
 * class (one row per class), decoded by the tokenizer of its kind; a pairing that cannot work
 * (another codebook, grid or latent size) is refused with a message naming both files. The
 * files' bytes are kept, so a device switch rebuilds every model on the new device.
 */
import * as E from '../../../engine/index.js';
import { CheckpointError, describe, mismatch, readCheckpoint, type Loaded } from './checkpoint.js';
import { drawGrid } from './render.js';
import { gridClasses, sampleARTokens, sampleDiTLatents, SamplingStopped } from './sample.js';
import { byId, clearErrors, numberInput, showError } from './ui.js';

type Slot = 'vq' | 'kl' | 'ar' | 'dit';

const FASHION = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];
const DIGITS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

function slotOf(l: Loaded): Slot {
  return l.kind === 'tokenizer' ? (l.model.continuous ? 'kl' : 'vq') : l.kind;
}

export class GeneratePanel {
  private readonly slots = new Map<Slot, { loaded: Loaded; bytes: Uint8Array }>();
  private sampling = false;
  private stopRequested = false;
  private samplePromise: Promise<void> = Promise.resolve();
  /** The generator loaded last: the one the selector shows. */
  private preferred: 'ar' | 'dit' | null = null;

  private readonly list = byId('models');
  private readonly genSelect = byId<HTMLSelectElement>('sample-generator');
  private readonly goBtn = byId<HTMLButtonElement>('sample-go');
  private readonly stopBtn = byId<HTMLButtonElement>('sample-stop');
  private readonly progress = byId<HTMLProgressElement>('sample-progress');
  private readonly status = byId('sample-status');
  private readonly canvas = byId<HTMLCanvasElement>('samples');

  constructor(private backend: E.Backend) {
    const input = byId<HTMLInputElement>('file-input');
    input.onchange = () => {
      void this.loadFiles([...(input.files ?? [])]);
      input.value = '';
    };
    const drop = byId('drop');
    drop.ondragover = (e) => {
      e.preventDefault();
      drop.classList.add('over');
    };
    drop.ondragleave = () => drop.classList.remove('over');
    drop.ondrop = (e) => {
      e.preventDefault();
      drop.classList.remove('over');
      void this.loadFiles([...(e.dataTransfer?.files ?? [])]);
    };
    // A file dropped beside the zone must not navigate away from the page.
    window.addEventListener('dragover', (e) => e.preventDefault());
    window.addEventListener('drop', (e) => e.preventDefault());
    this.genSelect.onchange = () => {
      this.preferred = this.genSelect.value as 'ar' | 'dit';
      this.refresh();
    };
    this.goBtn.onclick = () => (this.samplePromise = this.sample());
    this.stopBtn.onclick = () => (this.stopRequested = true);
    this.refresh();
  }

  /** Rebuilds every loaded model on `backend` from the kept bytes (after stopping a running sample). */
  async setBackend(backend: E.Backend): Promise<void> {
    this.stopRequested = true;
    await this.samplePromise;
    this.backend = backend;
    const kept = [...this.slots.values()];
    for (const s of kept) s.loaded.model.dispose();
    this.slots.clear();
    for (const { loaded, bytes } of kept) {
      try {
        this.add(bytes, loaded.file);
      } catch (e) {
        showError(e, `rebuilding ${loaded.file} on the new device`);
      }
    }
    this.refresh();
  }

  /** Loads the shipped checkpoints (relative URLs: the built site works under any path). */
  async loadDefaults(urls: readonly string[]): Promise<void> {
    for (const url of urls) {
      try {
        const res = await fetch(url);
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        this.add(new Uint8Array(await res.arrayBuffer()), url.split('/').pop()!);
      } catch (e) {
        showError(e, `loading the shipped checkpoint ${url}`);
      }
    }
    this.refresh();
  }

  async loadFiles(files: readonly File[]): Promise<void> {
    clearErrors();
    for (const f of files) {
      try {
        if (!f.name.endsWith('.safetensors')) throw new CheckpointError(`${f.name}: not a .safetensors file (the CLI writes checkpoint.safetensors in its --out folder)`);
        this.add(new Uint8Array(await f.arrayBuffer()), f.name);
      } catch (e) {
        showError(e, 'loading a checkpoint');
      }
    }
    this.refresh();
  }

  private add(bytes: Uint8Array, file: string): void {
    const loaded = readCheckpoint(bytes, file, this.backend);
    const slot = slotOf(loaded);
    this.slots.get(slot)?.loaded.model.dispose();
    this.slots.set(slot, { loaded, bytes });
    if (slot === 'ar' || slot === 'dit') this.preferred = slot;
  }

  private refresh(): void {
    const order: Slot[] = ['vq', 'ar', 'kl', 'dit'];
    this.list.replaceChildren(
      ...order.flatMap((k) => {
        const s = this.slots.get(k);
        if (!s) return [];
        const li = document.createElement('li');
        li.textContent = describe(s.loaded);
        li.dataset.slot = k;
        return [li];
      }),
    );
    const gens = (['ar', 'dit'] as const).filter((k) => this.slots.has(k));
    const want = this.preferred ?? this.genSelect.value;
    const chosen = gens.find((g) => g === want) ?? gens[0];
    this.genSelect.replaceChildren(...gens.map((k) => new Option(k === 'ar' ? 'AR (tokens)' : 'DiT (latents)', k)));
    if (chosen) this.genSelect.value = chosen;
    byId('ar-controls').hidden = chosen === 'dit';
    byId('dit-controls').hidden = chosen !== 'dit';
    this.goBtn.disabled = this.sampling || !chosen;
    this.stopBtn.disabled = !this.sampling;
  }

  private async sample(): Promise<void> {
    clearErrors();
    // Before any check: whoever watches the state never sees the previous sample's outcome.
    this.status.dataset.state = 'running';
    this.status.textContent = 'starting...';
    const kind = this.genSelect.value as 'ar' | 'dit';
    const gen = this.slots.get(kind)?.loaded;
    const tok = this.slots.get(kind === 'ar' ? 'vq' : 'kl')?.loaded;
    try {
      if (!gen) throw new Error('load a generator checkpoint first');
      if (!tok || tok.kind !== 'tokenizer') throw new Error(`${gen.file} needs a ${kind === 'ar' ? 'VQ' : 'KL'} tokenizer to decode its samples: load the tokenizer checkpoint it was trained on`);
      const why = mismatch(gen, tok.model, tok.file);
      if (why) throw new Error(why);
      const perClass = numberInput('sample-per-class', 'Per class', { integer: true });
      const cfgScale = numberInput('sample-cfg', 'CFG scale');
      const seed = numberInput('sample-seed', 'Seed', { integer: true });
      if (gen.kind === 'tokenizer') throw new Error(`${gen.file} is not a generator`);
      const numClasses = Math.min(gen.model.cfg.numClasses, 10);
      const classes = gridClasses(numClasses, perClass);
      const generator = new E.Generator(seed);
      const names = gen.model.cfg.numClasses === 10 ? (gen.extra.dataset === 'mnist' ? DIGITS : FASHION) : Array.from({ length: numClasses }, (_, c) => `class ${c}`);
      this.sampling = true;
      this.stopRequested = false;
      this.refresh();
      const t0 = performance.now();
      const onProgress = (done: number, total: number) => {
        this.progress.max = total;
        this.progress.value = done;
        this.status.textContent = `${kind === 'ar' ? 'token' : 'step'} ${done}/${total} for ${classes.length} images`;
      };
      const stop = () => this.stopRequested;
      let images: E.Tensor;
      if (gen.kind === 'ar') {
        const o = { cfgScale, generator, temperature: numberInput('sample-temp', 'Temperature'), topK: numberInput('sample-topk', 'Top-k', { integer: true }), topP: numberInput('sample-topp', 'Top-p') };
        const ids = await sampleARTokens(gen.model, classes, o, onProgress, stop);
        const [h, w] = tok.model.tokenGrid(32, 32);
        images = E.noGrad(() => E.tidy(() => tok.model.decodeIndices(ids.reshape([classes.length, h, w])).maximum(-1).minimum(1)));
        ids.dispose();
      } else {
        const o = { cfgScale, generator, sampler: byId<HTMLSelectElement>('sample-sampler').value as 'euler' | 'heun', steps: numberInput('sample-steps', 'Steps', { integer: true }) };
        const z = await sampleDiTLatents(gen.model, classes, o, onProgress, stop);
        images = E.noGrad(() => E.tidy(() => tok.model.decodeLatents(z).maximum(-1).minimum(1)));
        z.dispose();
      }
      try {
        const [, , S] = images.shape as [number, number, number, number];
        drawGrid(this.canvas, Float32Array.from(await images.toArray()), classes.length, S, perClass, { labels: names.slice(0, numClasses) });
      } finally {
        images.dispose();
      }
      this.status.textContent = `${classes.length} samples in ${((performance.now() - t0) / 1000).toFixed(1)} s (${gen.file}, decoded by ${tok.file})`;
      this.status.dataset.state = 'done';
    } catch (e) {
      if (e instanceof SamplingStopped) {
        this.status.textContent = e.message;
        this.status.dataset.state = 'stopped';
      } else {
        showError(e, 'sampling');
        this.status.textContent = 'sampling failed (see the message above)';
        this.status.dataset.state = 'error';
      }
    } finally {
      this.sampling = false;
      this.refresh();
    }
  }
}
