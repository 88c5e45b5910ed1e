/**
 * The HTML report builder for experiments (Node only), plus what reports are made from: the
 * browser-safe SVG charts and metrics-log parser (nn/data/plot) and the metrics-file reader.
 */
export * from './html.js';
export * from '../../nn/data/plot/index.js';
export { readMetricsLog } from '../data/files.js';
export * from './interval-charts.js';
