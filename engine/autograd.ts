/**
 * Reverse-mode autodiff over the tape that `record` builds. One topological sort, then each
 * node's backward rule in reverse order. Rules are built from differentiable ops, so with
 * `createGraph` the gradients are themselves on the tape (grad of grad).
 */
import { withGradMode } from './grad-mode.js';
import { keep, onTensorCreated, tidy } from './scope.js';
import { fmtShape, shapesEqual } from './shape.js';
import type { Storage } from './backend.js';
import { isTensor, type GradNode, type Tensor } from './tensor.js';
import { add } from './ops/binary.js';
import { onesLike, zerosLike } from './ops/creation.js';
import { detach } from './ops/movement.js';

export interface BackwardOptions {
  /** Record the backward computation so the gradients can be differentiated again. */
  createGraph?: boolean;
}

function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  // Iterative DFS: deep graphs (long training unrolls) must not overflow the JS stack.
  const stack: [Tensor, number][] = [[root, 0]];
  seen.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const [t, i] = top;
    const inputs = t.node?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const child = inputs[i]!;
      if (child.requiresGrad && !seen.has(child)) {
        seen.add(child);
        stack.push([child, 0]);
      }
    } else {
      order.push(t);
      stack.pop();
    }
  }
  return order; // inputs before the tensors computed from them
}

/** Whether input k of a node takes a gradient from it (its requiresGrad when the node was recorded). */
const wants = (node: GradNode, k: number): boolean => (node.needsGrad ? node.needsGrad[k]! : node.inputs[k]!.requiresGrad);

/**
 * Runs the tape backward from `root` and returns the gradient of every visited tensor. With
 * `targets`, only the nodes through which some target is reached are run (the rest of the graph
 * cannot contribute to the targets' gradients), as torch.autograd.grad prunes.
 */
function runBackward(root: Tensor, seed: Tensor | undefined, createGraph: boolean, targets?: readonly Tensor[]): Map<Tensor, Tensor> {
  if (!root.requiresGrad) throw new Error(`backward: ${root.describe()} does not require grad (no input of it requires grad, or it was computed under noGrad)`);
  if (!seed && root.size !== 1) throw new Error(`backward: ${root.describe()} is not a scalar; pass the output gradient explicitly`);
  if (seed && !shapesEqual(seed.shape, root.shape)) throw new Error(`backward: gradient shape ${fmtShape(seed.shape)} does not match output shape ${fmtShape(root.shape)}`);
  const order = topoOrder(root);
  let needed: Set<Tensor> | null = null;
  if (targets) {
    const n = (needed = new Set(targets));
    for (const t of order) if (!n.has(t) && t.node?.inputs.some((x) => n.has(x))) n.add(t);
  }
  const grads = new Map<Tensor, Tensor>();
  // Without createGraph, an intermediate tensor's gradient is freed as soon as its node has used
  // it (and a partial sum once added), so the backward holds the frontier of gradients, not all of
  // them. A gradient's storage is freed with every tensor this backward made on it (rules return
  // views of their results), once none of them is still a value of `grads` (a rule may pass its
  // output gradient through unchanged) or a requested gradient. Tensors made before the backward
  // (the seed, saved activations) are never freed here.
  const made = new Map<Storage, Tensor[]>();
  const stopWatching = createGraph
    ? () => {}
    : onTensorCreated((t) => {
        const list = made.get(t.storage);
        if (list) list.push(t);
        else made.set(t.storage, [t]);
      });
  grads.set(root, seed ?? onesLike(root));
  const targetSet = targets !== undefined ? new Set(targets) : null;
  const kept = (t: Tensor) => !t.node || (targetSet !== null && targetSet.has(t));
  const holders = new Map<Tensor, number>();
  const hold = (g: Tensor) => holders.set(g, (holders.get(g) ?? 0) + 1);
  const release = (g: Tensor) => {
    const n = (holders.get(g) ?? 0) - 1;
    if (n > 0) return holders.set(g, n);
    holders.delete(g);
    if (createGraph || g.isDisposed) return;
    const group = made.get(g.storage);
    if (!group || group.some((u) => holders.has(u))) return;
    made.delete(g.storage);
    for (const u of group) u.dispose();
  };
  hold(grads.get(root)!);
  try {
    withGradMode(createGraph, () => {
      for (let i = order.length - 1; i >= 0; i--) {
        const t = order[i]!;
        const g = grads.get(t);
        if (!g || !t.node || (needed && !needed.has(t))) continue;
        // Without createGraph, each rule's temporaries are freed as soon as it returns.
        const node = t.node;
        // The partial sums the rule adds into its own gradients (an input listed once only).
        const partial = node.accumulates?.length ? node.inputs.map((inp, k) => (node.accumulates!.includes(k) && wants(node, k) && node.inputs.indexOf(inp) === node.inputs.lastIndexOf(inp) ? grads.get(inp) : undefined)) : undefined;
        const inGrads = createGraph ? node.backward(g, partial) : tidy(() => node.backward(g, partial));
        // All of the node's gradients are held before any is added in: outputs of one kernel may
        // share a storage, which must outlive the last of them.
        const flows: [Tensor, Tensor, number][] = [];
        node.inputs.forEach((inp, k) => {
          const gi = inGrads[k];
          if (!gi || !wants(node, k)) return;
          if (!shapesEqual(gi.shape, inp.shape)) {
            throw new Error(`backward of ${node.op}: gradient shape ${fmtShape(gi.shape)} does not match input shape ${fmtShape(inp.shape)}`);
          }
          hold(gi);
          flows.push([inp, gi, k]);
        });
        for (const [inp, gi, k] of flows) {
          const prev = grads.get(inp);
          if (!prev) {
            grads.set(inp, gi);
            continue;
          }
          if (partial?.[k] === prev) {
            // The rule already added the partial sum in.
            grads.set(inp, gi);
            release(prev);
            continue;
          }
          const sum = add(prev, gi);
          hold(sum);
          grads.set(inp, sum);
          release(prev);
          release(gi);
        }
        if (!kept(t)) {
          grads.delete(t);
          release(g);
        }
      }
    });
  } finally {
    stopWatching();
  }
  return grads;
}

/**
 * Accumulates d(root)/d(leaf) into `.grad` of every leaf that requires grad. Intermediate
 * gradients are freed; leaf gradients are kept out of enclosing tidy scopes.
 */
export function backward(root: Tensor, gradOutput?: Tensor, opts: BackwardOptions = {}): void {
  const createGraph = opts.createGraph ?? false;
  // With createGraph the tensors made during backward belong to the new graph: the caller's
  // scope owns them. Without it, everything but the leaf gradients is freed here.
  const collect = () => {
    const grads = runBackward(root, gradOutput, createGraph);
    const out = new Map<Tensor, Tensor>();
    // Leaves reached through a node that recorded them as needing a gradient (requiresGrad as it
    // was then), and the root itself when it is a leaf that requires one.
    for (const [t, g] of grads) if (!t.node && (t !== root || t.requiresGrad)) out.set(t, g);
    return out;
  };
  const leafGrads = createGraph ? collect() : tidy(collect);
  for (const [leaf, g] of leafGrads) {
    // A gradient may alias a tensor the user owns (the seed): store a view so disposing one is safe.
    const own = isTensor(g) && g === gradOutput ? detach(g) : g;
    if (leaf.grad) {
      const old = leaf.grad;
      leaf.grad = keep(withGradMode(createGraph, () => add(old, own)));
      old.dispose();
      own.dispose();
    } else leaf.grad = keep(own);
  }
}

/**
 * Gradients of `output` with respect to `inputs` (like torch.autograd.grad), without touching
 * `.grad`. Inputs that `output` does not depend on get zeros.
 */
export function gradients(output: Tensor, inputs: readonly Tensor[], opts: BackwardOptions & { gradOutput?: Tensor } = {}): Tensor[] {
  const createGraph = opts.createGraph ?? false;
  const collect = () => {
    const grads = runBackward(output, opts.gradOutput, createGraph, inputs);
    return inputs.map((x) => {
      const g = grads.get(x);
      if (!g) return zerosLike(x, 'f32');
      return g === opts.gradOutput ? detach(g) : g;
    });
  };
  return createGraph ? collect() : tidy(collect);
}

/**
 * grad(f)(...xs): gradients of scalar f with respect to every tensor argument. Arguments that
 * already require grad stay on the tape, so grad(grad(f)) works.
 */
export function grad(f: (...xs: Tensor[]) => Tensor): (...xs: Tensor[]) => Tensor[] {
  return (...xs) => valueAndGrad(f)(...xs).grads;
}

export function valueAndGrad(f: (...xs: Tensor[]) => Tensor): (...xs: Tensor[]) => { value: Tensor; grads: Tensor[] } {
  return (...xs) => {
    const nested = xs.some((x) => x.requiresGrad);
    const args = xs.map((x) => (x.requiresGrad ? x : detach(x).requireGrad()));
    const value = withGradMode(true, () => f(...args));
    const grads = gradients(value, args, { createGraph: nested });
    xs.forEach((x, i) => args[i] !== x && args[i]!.dispose());
    return { value, grads };
  };
}
