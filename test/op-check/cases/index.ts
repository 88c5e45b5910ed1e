/** Every op case, by family. A new op family adds its file here. */
import type { OpCase } from '../kit.js';
import { attentionCases } from './attention.js';
import { convCases } from './conv.js';
import { copyCases } from './copy.js';
import { elementwiseCases } from './elementwise.js';
import { indexingCases } from './indexing.js';
import { matmulCases } from './matmul.js';
import { movementCases } from './movement.js';
import { normCases } from './norm.js';
import { optimCases } from './optim.js';
import { randomCases } from './random.js';
import { reduceCases } from './reduce.js';
import { sampleCases } from './sample.js';
import { softmaxCases } from './softmax.js';
import { vqCases } from './vq.js';

export const OP_CASES: OpCase[] = [
  ...elementwiseCases, ...normCases, ...reduceCases, ...softmaxCases, ...indexingCases, ...movementCases,
  ...copyCases, ...matmulCases, ...convCases, ...attentionCases, ...vqCases, ...optimCases, ...randomCases, ...sampleCases,
];
