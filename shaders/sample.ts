/**
 * Token sampling from logits rows (engine/ops/sample.ts documents the algorithm and tie rule).
 * One workgroup of `wg` threads (32..256, by row length) per row; rows of any length are read in
 * strides. Workgroup reductions are two-level (groups of 16 lanes summed in order by one lane each,
 * then every thread folds the group results), 2 barriers each:
 *  - pass 1: row max and argmax (lowest index on ties);
 *  - top-k: 16 counting passes find the k-th largest logit exactly by bisection over the
 *    order-preserving u32 key of the f32 value, 2 bits per pass (3 candidate thresholds counted at
 *    once as a vec3 and reduced in one tree);
 *  - top-p: 16 passes the same way over the kept exp-mass (pass 0's lowest candidate is the whole
 *    kept mass S, so the target p * S needs no extra pass);
 *  - sampling: each thread sums a contiguous chunk of the row, a two-level scan gives the chunk
 *    CDF (the chunk intervals partition [0, Z) exactly: neighbouring bounds are the same f32
 *    value), and the thread whose interval holds u * Z walks its chunk in index order.
 * The uniform u of row b is word b % 4 of Philox block counter + floor(b / 4) (as rand()).
 */
import { defineKernel, read, rw } from '../engine/kernel.js';
import { PHILOX_WGSL } from './philox.js';

/** Threads per row: about 8+ elements per thread, 32 to 256. */
export function sampleWorkgroup(V: number): number {
  return V >= 2048 ? 256 : V >= 512 ? 128 : V >= 256 ? 64 : 32;
}

/**
 * One workgroup of `wg` threads per row. Element j of row b is x[offset + b * rowStride + j * colStride];
 * k = 0 turns top-k off, p = 1 top-p; greedy (0 / 1) writes the argmax. (key0, key1) is the Philox
 * key and (ctr0 .. ctr3) the first counter block of the call.
 */
export const sampleKernel = defineKernel<{ wg: number }>({
  name: 'sample_logits',
  key: (v) => `${v.wg}`,
  signature: () => ({
    params: {
      B: 'u32', V: 'u32', offset: 'u32', rowStride: 'u32', colStride: 'u32', k: 'u32',
      key0: 'u32', key1: 'u32', ctr0: 'u32', ctr1: 'u32', ctr2: 'u32', ctr3: 'u32', greedy: 'u32', T: 'f32', p: 'f32',
    },
    bindings: { x: read(), out: rw('i32') },
  }),
  body: ({ wg }) => sampleBody(wg),
});

function sampleBody(wg: number): string {
  if (!(wg >= 16 && wg % 16 === 0)) throw new Error(`sample_logits: workgroup size ${wg} must be a multiple of 16`);
  const NG = wg / 16;
  return `${PHILOX_WGSL}
var<workgroup> sf: array<vec4<f32>, ${wg}>;
var<workgroup> su: array<vec4<u32>, ${wg}>;
var<workgroup> sc: array<f32, ${wg}>;
var<workgroup> gf: array<vec4<f32>, ${NG}>;
var<workgroup> gu: array<vec4<u32>, ${NG}>;
const NONE: u32 = 0xffffffffu;

// Order-preserving map f32 -> u32 (-0 is mapped as +0).
fn okey(v: f32) -> u32 {
  var b = bitcast<u32>(v);
  if (b == 0x80000000u) { b = 0u; }
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

// Workgroup sums (same order every call, so equal inputs give bitwise-equal sums).
fn sum_u(t: u32, v: vec4<u32>) -> vec4<u32> {
  su[t] = v;
  workgroupBarrier();
  if (t < ${NG}u) {
    var a = vec4<u32>(0u);
    for (var i = 0u; i < 16u; i++) { a += su[16u * t + i]; }
    gu[t] = a;
  }
  workgroupBarrier();
  var r = vec4<u32>(0u);
  for (var g = 0u; g < ${NG}u; g++) { r += gu[g]; }
  return r;
}

fn sum_f(t: u32, v: vec4<f32>) -> vec4<f32> {
  sf[t] = v;
  workgroupBarrier();
  if (t < ${NG}u) {
    var a = vec4<f32>(0.0);
    for (var i = 0u; i < 16u; i++) { a += sf[16u * t + i]; }
    gf[t] = a;
  }
  workgroupBarrier();
  var r = vec4<f32>(0.0);
  for (var g = 0u; g < ${NG}u; g++) { r += gf[g]; }
  return r;
}

// (max, index) merge: larger value, lower index on ties; NONE = empty.
fn better(m: f32, i: u32, m2: f32, i2: u32) -> bool {
  return i2 != NONE && (i == NONE || m2 > m || (m2 == m && i2 < i));
}

@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = linear_wg(wid, nwg);
  if (row >= P.B) { return; }
  let t = lid.x;
  let V = P.V;
  let base = P.offset + row * P.rowStride;
  let cs = P.colStride;

  // ---- max and argmax (lowest index on ties) ----
  var m = 0.0; // unused until the first element (mi == NONE)
  var mi = NONE;
  for (var j = t; j < V; j += ${wg}u) {
    let v = x[base + j * cs];
    if (better(m, mi, v, j)) { m = v; mi = j; }
  }
  sf[t].x = m;
  su[t].x = mi;
  workgroupBarrier();
  if (t < ${NG}u) {
    var a = sf[16u * t].x;
    var ai = su[16u * t].x;
    for (var i = 1u; i < 16u; i++) {
      if (better(a, ai, sf[16u * t + i].x, su[16u * t + i].x)) { a = sf[16u * t + i].x; ai = su[16u * t + i].x; }
    }
    gf[t].x = a;
    gu[t].x = ai;
  }
  workgroupBarrier();
  m = gf[0].x;
  mi = gu[0].x;
  for (var g = 1u; g < ${NG}u; g++) {
    if (better(m, mi, gf[g].x, gu[g].x)) { m = gf[g].x; mi = gu[g].x; }
  }
  if (P.greedy != 0u) {
    if (t == 0u) { out[row] = i32(mi); }
    return;
  }
  let T = P.T;
  let p = P.p;
  let k = P.k;

  // ---- top-k: the largest key lk with #{key >= lk} >= k ----
  var lk = 0u;
  if (k > 0u) {
    for (var it = 0u; it < 16u; it++) {
      let s = 1u << (30u - 2u * it);
      let c = vec3<u32>(lk + s, lk + 2u * s, lk + 3u * s);
      var cnt = vec3<u32>(0u);
      for (var j = t; j < V; j += ${wg}u) {
        let kk = okey(x[base + j * cs]);
        cnt += select(vec3<u32>(0u), vec3<u32>(1u), vec3<u32>(kk) >= c);
      }
      let tot = sum_u(t, vec4<u32>(cnt, 0u));
      if (tot.x >= k) { lk = c.x; }
      if (tot.y >= k) { lk = c.y; }
      if (tot.z >= k) { lk = c.z; }
    }
  }

  // ---- top-p: the largest key lp with kept mass of {key >= lp} >= p * S ----
  var th = lk;
  if (p < 1.0) {
    var lp = 0u;
    var goal = 0.0;
    for (var it = 0u; it < 16u; it++) {
      let s = 1u << (30u - 2u * it);
      let c = vec4<u32>(lp, lp + s, lp + 2u * s, lp + 3u * s);
      var acc = vec4<f32>(0.0);
      for (var j = t; j < V; j += ${wg}u) {
        let v = x[base + j * cs];
        let kk = okey(v);
        if (kk >= lk) {
          let e = select(exp((v - m) / T), 1.0, v == m);
          acc += select(vec4<f32>(0.0), vec4<f32>(e), vec4<u32>(kk) >= c);
        }
      }
      let tot = sum_f(t, acc);
      if (it == 0u) { goal = p * tot.x; } // c.x = 0: the whole kept mass S
      if (tot.y >= goal) { lp = c.y; }
      if (tot.z >= goal) { lp = c.z; }
      if (tot.w >= goal) { lp = c.w; }
    }
    th = max(lp, lk);
  }

  // ---- inverse CDF in index order over the nucleus {key >= th} ----
  let C = (V + ${wg - 1}u) / ${wg}u;
  let j0 = min(t * C, V);
  let j1 = min(j0 + C, V);
  var s = 0.0;
  var last = 0u; // last nucleus index + 1 (0: none)
  for (var j = j0; j < j1; j++) {
    let v = x[base + j * cs];
    if (okey(v) >= th) {
      s += select(exp((v - m) / T), 1.0, v == m);
      last = j + 1u;
    }
  }
  sf[t].x = s;
  su[t].x = last;
  workgroupBarrier();
  if (t < ${NG}u) {
    var a = 0.0;
    var l = 0u;
    for (var i = 0u; i < 16u; i++) {
      a += sf[16u * t + i].x;
      sc[16u * t + i] = a;
      l = max(l, su[16u * t + i].x);
    }
    gf[t].x = a;
    gu[t].x = l;
  }
  workgroupBarrier();
  let grp = t / 16u;
  var before = 0.0;
  var Z = 0.0;
  var lastRow = 0u;
  for (var g = 0u; g < ${NG}u; g++) {
    if (g == grp) { before = Z; }
    Z += gf[g].x;
    lastRow = max(lastRow, gu[g].x);
  }
  let incl = before + sc[t];
  var excl = before;
  if (t % 16u != 0u) { excl = before + sc[t - 1u]; }

  let blk = row / 4u;
  let c0 = P.ctr0 + blk;
  let c1 = P.ctr1 + select(0u, 1u, c0 < blk);
  let r = philox4x32_10(vec4<u32>(c0, c1, P.ctr2, P.ctr3), vec2<u32>(P.key0, P.key1));
  let goal = u01(r[row % 4u]) * Z;

  if (excl <= goal && goal < incl) {
    var pick = last - 1u;
    var acc = excl;
    for (var j = j0; j < j1; j++) {
      let v = x[base + j * cs];
      if (okey(v) >= th) {
        acc += select(exp((v - m) / T), 1.0, v == m);
        if (acc > goal) { pick = j; break; }
      }
    }
    out[row] = i32(pick);
  } else if (t == ${wg - 1}u && !(goal < Z)) {
    // Rounding (or NaN) left no interval: the last nucleus index, else the argmax.
    out[row] = i32(select(mi, lastRow - 1u, lastRow > 0u));
  }
}
`;
}
