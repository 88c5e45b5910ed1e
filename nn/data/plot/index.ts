/**
 * SVG charts (browser-safe): line charts for loss curves, scatter charts with a least-squares
 * line, the shared ticks / escaping / palette, and the metrics.jsonl parser that feeds them.
 * node/data/files.ts writes charts and reads metrics files; node/report inlines them in HTML.
 */
export { CHART_COLORS, escapeXml, linearTicks, logTicks, tickLabel, type ChartOptions, type Ticks } from './svg.js';
export { lineChart, type LineChartOptions, type PlotSeries } from './line.js';
export { linearFit, scatterChart, type ScatterChartOptions, type ScatterPoint } from './scatter.js';
export { compareRunsSeries, metricsSeries, parseMetricsLog, type MetricsLogOptions, type MetricsRecord } from './metrics-log.js';
