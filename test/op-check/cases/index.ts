/** Every op case, by family. A new op family adds its file here. */
import type { OpCase } from '../kit.js';
import { elementwiseCases } from './elementwise.js';
import { indexingCases } from './indexing.js';
import { movementCases } from './movement.js';
import { normCases } from './norm.js';
import { reduceCases } from './reduce.js';
import { softmaxCases } from './softmax.js';

export const OP_CASES: OpCase[] = [...elementwiseCases, ...normCases, ...reduceCases, ...softmaxCases, ...indexingCases, ...movementCases];
