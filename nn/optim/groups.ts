/** Parameter-group helpers. */
import type { Tensor } from '../../engine/index.js';
import type { NamedParam } from './optimizer.js';

/** Whether a parameter is conventionally exempt from weight decay: 0-/1-D, or a norm / bias / ln parameter by name. */
export function isNoDecayParam(name: string, p: Tensor): boolean {
  return p.rank <= 1 || /norm|bias/i.test(name) || /(^|[._])ln/i.test(name);
}

/**
 * Two groups for AdamW-style training: { params, weightDecay } for weights and
 * { params, weightDecay: 0 } for biases, norm weights and other 1-D parameters (see
 * isNoDecayParam). Both groups are always returned (possibly empty) so the group structure of a
 * checkpoint does not depend on the model.
 */
export function paramGroupsNoDecay(
  namedParams: Iterable<NamedParam>,
  weightDecay: number,
  noDecay: (name: string, p: Tensor) => boolean = isNoDecayParam,
): [{ params: NamedParam[]; weightDecay: number }, { params: NamedParam[]; weightDecay: number }] {
  const decay: NamedParam[] = [];
  const none: NamedParam[] = [];
  for (const [name, p] of namedParams) (noDecay(name, p) ? none : decay).push([name, p]);
  return [
    { params: decay, weightDecay },
    { params: none, weightDecay: 0 },
  ];
}
