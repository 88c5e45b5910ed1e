/**
 * The playground page: picks the device, loads the bundled images and the shipped checkpoints,
 * and wires the two panels. body[data-ready] is set once everything is loaded (scripts and tests
 * wait for it); errors anywhere, including unhandled ones, are shown on the page.
 */
import { loadData } from './data.js';
import { pickDevice, type DeviceChoice } from './device.js';
import { GeneratePanel } from './generate-panel.js';
import { TrainPanel } from './train-panel.js';
import { byId, showError } from './ui.js';

const DATA_URL = 'fashion-mnist-1000.wgtk';
const DEFAULT_CHECKPOINTS = ['pretrained/tokenizer.safetensors', 'pretrained/ar.safetensors'];

window.addEventListener('error', (e) => showError(e.error ?? e.message, 'unexpected error'));
window.addEventListener('unhandledrejection', (e) => showError(e.reason, 'unexpected error'));

function showDevice(label: string, cpu: boolean): void {
  const badge = byId('device-label');
  badge.textContent = label;
  badge.classList.toggle('cpu', cpu);
  badge.dataset.kind = cpu ? 'cpu' : 'webgpu';
}

async function main(): Promise<void> {
  const select = byId<HTMLSelectElement>('device-select');
  const first = await pickDevice('auto');
  showDevice(first.label, first.backend.kind === 'cpu');
  if (first.backend.kind === 'cpu') select.value = 'cpu';
  const generate = new GeneratePanel(first.backend);
  const data = await loadData(DATA_URL);
  const train = new TrainPanel(first.backend, data);
  await generate.loadDefaults(DEFAULT_CHECKPOINTS);
  byId('train-start').removeAttribute('disabled');
  select.onchange = async () => {
    select.disabled = true;
    try {
      const d = await pickDevice(select.value as DeviceChoice);
      await Promise.all([train.setBackend(d.backend), generate.setBackend(d.backend)]);
      showDevice(d.label, d.backend.kind === 'cpu');
    } catch (e) {
      showError(e, 'switching the device');
    } finally {
      select.disabled = false;
    }
  };
  document.body.dataset.ready = '1';
}

main().catch((e) => showError(e, 'starting the playground'));
