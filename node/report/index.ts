/** Report building blocks for experiments (Node only): SVG charts, an HTML page builder, metrics logs. */
export * from './svg-plot.js';
export * from './html.js';
export * from './metrics-log.js';
