/** Drawing on the page's canvases: image grids and the loss curve. */

/**
 * Draws images [B, 1, S, S] with values in [-1, 1] as a grid of `perRow` columns, each pixel
 * `scale` canvas pixels, with a 1-pixel gap. Rows may carry a label on the left (`labels`).
 */
export function drawGrid(canvas: HTMLCanvasElement, pixels: Float32Array, count: number, size: number, perRow: number, o: { scale?: number; labels?: readonly string[] } = {}): void {
  const scale = o.scale ?? 3;
  const rows = Math.ceil(count / perRow);
  const labelW = o.labels ? 84 : 0;
  const cell = size * scale + 2;
  canvas.width = labelW + perRow * cell;
  canvas.height = rows * cell;
  const ctx = canvas.getContext('2d')!;
  ctx.fillStyle = '#1b1d22';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const img = new ImageData(size, size);
  const tile = document.createElement('canvas');
  tile.width = tile.height = size;
  const tctx = tile.getContext('2d')!;
  ctx.imageSmoothingEnabled = false;
  for (let k = 0; k < count; k++) {
    for (let i = 0; i < size * size; i++) {
      const v = Math.round(((Math.max(-1, Math.min(1, pixels[k * size * size + i]!)) + 1) / 2) * 255);
      img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = v;
      img.data[4 * i + 3] = 255;
    }
    tctx.putImageData(img, 0, 0);
    ctx.drawImage(tile, labelW + (k % perRow) * cell + 1, Math.floor(k / perRow) * cell + 1, size * scale, size * scale);
  }
  if (o.labels) {
    ctx.fillStyle = '#c9ccd3';
    ctx.font = '12px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    o.labels.slice(0, rows).forEach((l, r) => ctx.fillText(l, 4, r * cell + cell / 2, labelW - 8));
  }
}

export interface Series {
  name: string;
  color: string;
  values: readonly number[];
}

/** A line chart of the loss terms per step (linear axes; the y range covers every value shown). */
export function drawLossChart(canvas: HTMLCanvasElement, series: readonly Series[]): void {
  const ctx = canvas.getContext('2d')!;
  const W = canvas.width;
  const H = canvas.height;
  const pad = { l: 48, r: 10, t: 10, b: 22 };
  ctx.fillStyle = '#1b1d22';
  ctx.fillRect(0, 0, W, H);
  const n = Math.max(0, ...series.map((s) => s.values.length));
  const all = series.flatMap((s) => s.values.filter(Number.isFinite));
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillStyle = '#8a8f99';
  if (n === 0 || all.length === 0) {
    ctx.fillText('the loss curve appears here once training runs', pad.l, H / 2);
    return;
  }
  const lo = Math.min(0, ...all);
  const hi = Math.max(...all) || 1;
  const x = (i: number) => pad.l + (n <= 1 ? 0 : (i / (n - 1)) * (W - pad.l - pad.r));
  const y = (v: number) => pad.t + (1 - (v - lo) / (hi - lo)) * (H - pad.t - pad.b);
  ctx.strokeStyle = '#3a3e47';
  ctx.lineWidth = 1;
  for (const f of [0, 0.5, 1]) {
    const v = lo + f * (hi - lo);
    ctx.beginPath();
    ctx.moveTo(pad.l, y(v));
    ctx.lineTo(W - pad.r, y(v));
    ctx.stroke();
    ctx.fillText(v.toPrecision(3), 4, y(v) + 4);
  }
  ctx.fillText(`step ${n}`, W - pad.r - 60, H - 6);
  series.forEach((s, k) => {
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    s.values.forEach((v, i) => (i === 0 ? ctx.moveTo(x(i), y(v)) : ctx.lineTo(x(i), y(v))));
    ctx.stroke();
    ctx.fillStyle = s.color;
    ctx.fillText(s.name, pad.l + 8 + k * 70, pad.t + 10);
  });
}
