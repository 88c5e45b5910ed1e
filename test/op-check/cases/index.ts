/** Every op case, by family. A new op family adds its file here. */
import type { OpCase } from '../kit.js';
import { elementwiseCases } from './elementwise.js';
import { normCases } from './norm.js';

export const OP_CASES: OpCase[] = [...elementwiseCases, ...normCases];
