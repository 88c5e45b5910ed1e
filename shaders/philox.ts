/**
 * Philox4x32-10 (Salmon, Moraes, Dror, Shaw: "Parallel random numbers: as easy as 1, 2, 3", SC'11),
 * the counter-based generator of Random123 / cuRAND / torch's CUDA RNG. Each thread maps one 128-bit
 * counter block to four u32 words. WGSL has no 32x32->64 multiply, so the high word is built from
 * 16-bit limbs; the CPU twin in engine/random.ts does the same with integer-exact doubles, so both
 * produce bit-identical streams.
 */
import { defineKernel, rw } from '../engine/kernel.js';

export const PHILOX_WG = 256;

/** Output transforms of the 4 words of a block. */
export type PhiloxKind = 'bits' | 'uniform' | 'normal' | 'randint' | 'bernoulli';

export const PHILOX_WGSL = /* wgsl */ `
fn mulhi32(a: u32, b: u32) -> u32 {
  let al = a & 0xffffu;
  let ah = a >> 16u;
  let bl = b & 0xffffu;
  let bh = b >> 16u;
  let ll = al * bl;
  let lh = al * bh;
  let hl = ah * bl;
  let hh = ah * bh;
  let mid = (ll >> 16u) + (lh & 0xffffu) + (hl & 0xffffu);
  return hh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
}
fn philox4x32_10(ctr: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
  var c = ctr;
  var k = key;
  for (var r = 0u; r < 10u; r++) {
    if (r > 0u) { k = k + vec2<u32>(0x9E3779B9u, 0xBB67AE85u); }
    let hi0 = mulhi32(0xD2511F53u, c.x);
    let lo0 = 0xD2511F53u * c.x;
    let hi1 = mulhi32(0xCD9E8D57u, c.z);
    let lo1 = 0xCD9E8D57u * c.z;
    c = vec4<u32>(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
  }
  return c;
}
// Top 24 bits as a float in [0, 1): exact in f32, so identical to the CPU value.
fn u01(w: u32) -> f32 { return f32(w >> 8u) * 5.9604644775390625e-8; }
`;

/**
 * ln(u) for u in (0, 1] and (cos, sin)(2 pi t) for t in [-1/2, 1/2], in plain f32 arithmetic to a
 * few ulp (series on reduced ranges; the reductions are exact for these inputs).
 */
export const NORMAL_WGSL = /* wgsl */ `
fn ln_unit(u: f32) -> f32 {
  let fr = frexp(u);
  var m = fr.fract;
  var e = f32(fr.exp);
  if (m < 0.70710678) { m = m * 2.0; e = e - 1.0; }
  // m in [sqrt(1/2), sqrt(2)): ln m = 2 atanh(s), |s| <= 0.172; m - 1 is exact.
  let s = (m - 1.0) / (m + 1.0);
  let s2 = s * s;
  let p = 1.0 + s2 * (0.33333333 + s2 * (0.2 + s2 * (0.14285714 + s2 * (0.11111111 + s2 * (0.09090909 + s2 * 0.07692308)))));
  return e * 0.69314718 + 2.0 * s * p;
}
fn cos_sin_turns(t: f32) -> vec2<f32> {
  // t = q / 4 + f with q = round(4 t), |f| <= 1/8 (exact: t is a multiple of 2^-24).
  let q = round(4.0 * t);
  let phi = (t - 0.25 * q) * 6.2831853;
  let p2 = phi * phi;
  let sn = phi * (1.0 - p2 / 6.0 * (1.0 - p2 / 20.0 * (1.0 - p2 / 42.0 * (1.0 - p2 / 72.0))));
  let cs = 1.0 - p2 / 2.0 * (1.0 - p2 / 12.0 * (1.0 - p2 / 30.0 * (1.0 - p2 / 56.0 * (1.0 - p2 / 90.0))));
  let k = (i32(q) + 4) & 3;
  if (k == 0) { return vec2<f32>(cs, sn); }
  if (k == 1) { return vec2<f32>(-sn, cs); }
  if (k == 2) { return vec2<f32>(-cs, -sn); }
  return vec2<f32>(sn, -cs);
}
`;

/**
 * Fills `out` with n values of `kind`. Thread t handles block t: counter (ctr0 + t, ctr1 + carry,
 * ctr2, ctr3) under key (key0, key1), and writes elements 4t..4t+3 (those below n).
 * a, b: uniform low/scale (f32), normal mean/std (f32), randint low (i32 bits, as u32) / range
 * (u32, 0 = 2^32), bernoulli p (f32; b unused), bits (both unused).
 */
export const philoxKernel = defineKernel<PhiloxKind>({
  name: 'philox',
  key: (kind) => kind,
  signature: (kind) => {
    const ab = kind === 'randint' ? 'u32' : 'f32';
    return {
      params: { n: 'u32', key0: 'u32', key1: 'u32', ctr0: 'u32', ctr1: 'u32', ctr2: 'u32', ctr3: 'u32', a: ab, b: ab },
      bindings: { out: rw(kind === 'bits' || kind === 'randint' ? 'i32' : 'f32') },
    };
  },
  body: philoxBody,
});

function philoxBody(kind: PhiloxKind): string {
  let values: string;
  switch (kind) {
    case 'bits':
      values = 'let v = vec4<i32>(bitcast<vec4<i32>>(r));';
      break;
    case 'uniform':
      values = 'let v = vec4<f32>(u01(r.x), u01(r.y), u01(r.z), u01(r.w)) * P.b + P.a;';
      break;
    case 'bernoulli':
      values = 'let v = select(vec4<f32>(0.0), vec4<f32>(1.0), vec4<f32>(u01(r.x), u01(r.y), u01(r.z), u01(r.w)) < vec4<f32>(P.a));';
      break;
    case 'randint':
      values = `let range = P.b;
  var m = r;
  if (range != 0u) { m = vec4<u32>(mulhi32(r.x, range), mulhi32(r.y, range), mulhi32(r.z, range), mulhi32(r.w, range)); }
  let v = bitcast<vec4<i32>>(m + vec4<u32>(P.a));`;
      break;
    case 'normal':
      // Box-Muller on (x, y) and (z, w): u1 in (0, 1] so log(u1) is finite; the angle is
      // 2 pi (u - 1/2) in [-pi, pi) and the signs are flipped to compensate. log, sin and cos are
      // our own (NORMAL_WGSL), not the builtins, whose WGSL error bounds (2^-11 absolute for sin/cos,
      // 2^-21 absolute for log near 1) would let devices disagree by ~1e-3: this way the same seed
      // gives the same normals to float rounding on every device and in the CPU twin.
      values = `let u1 = vec2<f32>(f32((r.x >> 8u) + 1u), f32((r.z >> 8u) + 1u)) * 5.9604644775390625e-8;
  let rad = sqrt(-2.0 * vec2<f32>(ln_unit(u1.x), ln_unit(u1.y)));
  let cs0 = cos_sin_turns(u01(r.y) - 0.5);
  let cs1 = cos_sin_turns(u01(r.w) - 0.5);
  let v = vec4<f32>(-rad.x * cs0.x, -rad.x * cs0.y, -rad.y * cs1.x, -rad.y * cs1.y) * P.b + P.a;`;
      break;
  }
  return `${PHILOX_WGSL}${kind === 'normal' ? NORMAL_WGSL : ''}
@compute @workgroup_size(${PHILOX_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = linear_wg(wid, nwg) * ${PHILOX_WG}u + lid.x;
  let n = P.n;
  if (t >= (n + 3u) / 4u) { return; }
  let c0 = P.ctr0 + t;
  let c1 = P.ctr1 + select(0u, 1u, c0 < t);
  let r = philox4x32_10(vec4<u32>(c0, c1, P.ctr2, P.ctr3), vec2<u32>(P.key0, P.key1));
  ${values}
  let base = 4u * t;
  for (var j = 0u; j < 4u; j++) {
    if (base + j < n) { out[base + j] = v[j]; }
  }
}
`;
}
