/**
 * Node-only file helpers of the data pipeline: reading images, writing PNG images, image grids
 * and SVG loss plots, reading trainLoop metrics logs. Writes are atomic (temp file + rename) so a
 * viewer never sees half a file.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { isTensor, type Tensor } from '../../engine/index.js';
import { decodeImage } from '../../nn/data/decode.js';
import { makeGrid, type GridOptions } from '../../nn/data/grid.js';
import type { Image } from '../../nn/data/image.js';
import { lineChart, metricsSeries, parseMetricsLog, type LineChartOptions, type MetricsLogOptions, type PlotSeries } from '../../nn/data/plot/index.js';
import { encodePng } from '../../nn/data/png.js';

let tmpCounter = 0;

/** Writes via a temp file in the same folder and a rename (creates the folder). */
export function writeFileAtomicSync(path: string, data: Uint8Array | string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${tmpCounter++}`;
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** Reads and decodes a PNG or JPEG file; errors name the file. */
export function readImageFile(path: string): Image {
  try {
    return decodeImage(new Uint8Array(readFileSync(path)));
  } catch (e) {
    throw new Error(`cannot read image ${path}: ${(e as Error).message}`, { cause: e });
  }
}

export function writePng(path: string, img: Image): void {
  writeFileAtomicSync(path, encodePng(img));
}

/**
 * Writes a batch of images [N, C, H, W] (or [N, H, W]) as one PNG grid. `images` is a Tensor
 * (read back from the device) or a flat array with `shape` in opts. Returns the grid image.
 */
export async function saveImageGrid(path: string, images: Tensor | ArrayLike<number>, opts: GridOptions & { shape?: readonly number[] } = {}): Promise<Image> {
  let data: ArrayLike<number>;
  let shape: readonly number[];
  if (isTensor(images)) {
    data = await images.toArray();
    shape = images.shape;
  } else {
    if (!opts.shape) throw new Error('saveImageGrid: pass opts.shape with a flat array');
    data = images;
    shape = opts.shape;
  }
  const grid = makeGrid(data, shape, opts);
  writePng(path, grid);
  return grid;
}

/** Writes a line chart (loss curves) as an SVG file; returns the SVG text. */
export function saveLossPlot(path: string, series: readonly PlotSeries[], opts: LineChartOptions = {}): string {
  const svg = lineChart(series, opts);
  writeFileAtomicSync(path, svg);
  return svg;
}

/**
 * Reads a trainLoop metrics.jsonl into one series per term (x = step; see parseMetricsLog: last
 * record wins for a repeated step, null is NaN, a cut-off last line is ignored, other bad lines
 * throw with path:line).
 */
export function readMetricsLog(path: string, opts: MetricsLogOptions = {}): PlotSeries[] {
  return metricsSeries(parseMetricsLog(readFileSync(path, 'utf8'), path), opts);
}

/** Plots terms of a metrics.jsonl (default: all) into an SVG file; returns the SVG text. */
export function plotMetricsFile(jsonlPath: string, svgPath: string, terms?: readonly string[], opts: LineChartOptions = {}): string {
  return saveLossPlot(svgPath, readMetricsLog(jsonlPath, { terms }), opts);
}
