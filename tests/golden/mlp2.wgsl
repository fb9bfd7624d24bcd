// Every module starts with this prelude, then its kernel below.
struct Params { batch: u32, first: u32, zero: u32, pad: u32 }
@group(0) @binding(0) var<storage, read_write> A: array<f32>;
@group(0) @binding(1) var<storage, read> C: array<f32>;
@group(0) @binding(2) var<uniform> P: Params;

fn is_nan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn inf() -> f32 { return bitcast<f32>(0x7f800000u); }
// `P.zero` is 0 at run time, which the shader compiler cannot know: an
// operand through `opaque` is never proven equal to the other operand, so
// `x - x` is not folded to 0 (it is NaN at x = inf or NaN).
fn opaque(x: f32) -> f32 { return bitcast<f32>(bitcast<u32>(x) ^ P.zero); }
fn nan() -> f32 { return bitcast<f32>(0x7fc00000u); }
fn copysign(m: f32, s: f32) -> f32 {
  return bitcast<f32>((bitcast<u32>(m) & 0x7fffffffu) | (bitcast<u32>(s) & 0x80000000u));
}
fn max_number(a: f32, b: f32) -> f32 {
  if (a > b || is_nan(b)) { return a; }
  if (a == b) { return bitcast<f32>(bitcast<u32>(a) & bitcast<u32>(b)); }
  return b;
}
fn min_number(a: f32, b: f32) -> f32 {
  if (a < b || is_nan(b)) { return a; }
  if (a == b) { return bitcast<f32>(bitcast<u32>(a) | bitcast<u32>(b)); }
  return b;
}
fn flag(c: bool) -> f32 { return select(0.0, 1.0, c); }
fn sq(x: f32) -> f32 { return x * x; }
fn exp_s(x: f32) -> f32 {
  if (is_nan(x)) { return x; }
  if (x > 88.8) { return inf(); }
  if (x < -104.0) { return 0.0; }
  return exp(x);
}
fn log_s(x: f32) -> f32 {
  let bits = bitcast<u32>(x);
  if (is_nan(x) || (bits & 0x80000000u) != 0u && (bits & 0x7fffffffu) != 0u) { return nan(); }
  if ((bits & 0x7fffffffu) == 0u) { return -inf(); }
  if (x == inf()) { return x; }
  // A subnormal (which the device may flush): m·2^-149, m exact in f32.
  if ((bits & 0x7f800000u) == 0u) { return log(f32(bits)) - 103.27892990343184; }
  return log(x);
}
fn log1p_s(x: f32) -> f32 {
  if (is_nan(x) || x < -1.0) { return nan(); }
  if (x == -1.0) { return -inf(); }
  if (x == inf()) { return x; }
  let u = 1.0 + x;
  if (u == 1.0) { return x; }
  return log(u) * (x / (u - 1.0));
}
fn sqrt_s(x: f32) -> f32 {
  if (is_nan(x) || x < 0.0) { return nan(); }
  if (x == 0.0 || x == inf()) { return x; }
  return sqrt(x);
}
fn sign_s(x: f32) -> f32 {
  if (x > 0.0) { return 1.0; }
  if (x < 0.0) { return -1.0; }
  return x;
}
fn tanh_s(x: f32) -> f32 {
  if (is_nan(x)) { return x; }
  let a = abs(x);
  if (a > 9.1) { return copysign(1.0, x); }
  if (a < 0.0004) { return x; }
  let e = exp(-2.0 * a);
  return copysign((1.0 - e) / (1.0 + e), x);
}
fn sigmoid_s(x: f32) -> f32 {
  if (x >= 0.0) { return 1.0 / (1.0 + exp_s(-x)); }
  let e = exp_s(x);
  return e / (1.0 + e);
}
fn softplus_s(x: f32) -> f32 {
  return max_number(x, 0.0) + log1p_s(exp_s(-abs(x)));
}
fn sin_s(x: f32) -> f32 { if (is_nan(x) || abs(x) == inf()) { return nan(); } return sin(x); }
fn cos_s(x: f32) -> f32 { if (is_nan(x) || abs(x) == inf()) { return nan(); } return cos(x); }
fn is_int(y: f32) -> bool { return floor(y) == y && abs(y) != inf(); }
fn is_odd(y: f32) -> bool { return abs(y) < 16777216.0 && floor(y) == y && (i32(abs(y)) & 1) == 1; }
fn pow_ieee(x: f32, y: f32) -> f32 {
  if (y == 0.0) { return 1.0; }
  if (x == 1.0) { return 1.0; }
  if (is_nan(x) || is_nan(y)) { return nan(); }
  let ax = abs(x);
  if (abs(y) == inf()) {
    if (ax == 1.0) { return 1.0; }
    if ((ax > 1.0) == (y > 0.0)) { return inf(); }
    return 0.0;
  }
  if (x == 0.0) {
    let odd = is_odd(y);
    if (y > 0.0) { return select(0.0, x, odd); }
    return select(inf(), copysign(inf(), x), odd);
  }
  if (ax == inf()) {
    let odd = is_odd(y);
    if (x > 0.0) { return select(0.0, inf(), y > 0.0); }
    if (y > 0.0) { return select(inf(), -inf(), odd); }
    return select(0.0, -0.0, odd);
  }
  if (x < 0.0 && !is_int(y)) { return nan(); }
  let r = exp2(y * log2(ax));
  if (x < 0.0 && is_odd(y)) { return -r; }
  return r;
}

// net: 1 passes; invariant region 97 values, 59 values per sample

const VB: u32 = 97u;

// the whole graph: one invocation per sample computes every value
fn all_of(b: u32) {
  // matmul [0, 1] -> [16]
  for (var e = 0u; e < 16u; e++) {
    let row = e / 16u;
    let col = e % 16u;
    var acc = 0.0;
    for (var p = 0u; p < 4u; p++) {
      let prod = A[VB + 0u * P.batch + b * 4u + row * 4u + p] * A[0u + p * 16u + col];
      acc = acc + prod;
    }
    A[VB + 4u * P.batch + b * 16u + e] = acc;
  }
  // tanh [4] -> [16]
  for (var e = 0u; e < 16u; e++) {
    A[VB + 20u * P.batch + b * 16u + e] = tanh_s((A[VB + 4u * P.batch + b * 16u + e] + opaque(A[64u + e])));
  }
  // matmul [5, 6] -> [1]
  for (var e = 0u; e < 1u; e++) {
    let row = e / 1u;
    let col = e % 1u;
    var acc = 0.0;
    for (var p = 0u; p < 16u; p++) {
      let prod = A[VB + 20u * P.batch + b * 16u + row * 16u + p] * A[80u + p * 1u + col];
      acc = acc + prod;
    }
    A[VB + 36u * P.batch + b * 1u + e] = acc;
  }
  // add [7, 8] -> [1]
  for (var e = 0u; e < 1u; e++) {
    A[VB + 37u * P.batch + b * 1u + e] = (A[VB + 36u * P.batch + b * 1u + e] + opaque(A[96u + e]));
  }
  // sum[0] [9] -> []
  for (var e = 0u; e < 1u; e++) {
    var acc = 0.0;
    for (var r0 = 0u; r0 < 1u; r0++) {
      acc = acc + A[VB + 37u * P.batch + b * 1u + (r0 * 1u)];
    }
    A[VB + 38u * P.batch + b * 1u + e] = acc;
  }
  // mul [13, 16] -> [16]
  for (var e = 0u; e < 16u; e++) {
    let ix14 = 0u;
    A[VB + 39u * P.batch + b * 16u + e] = (A[80u + e] * (C[0u + ix14] - opaque((A[VB + 20u * P.batch + b * 16u + e] * A[VB + 20u * P.batch + b * 16u + e]))));
  }
  // matmul [1, 17] -> [4]
  for (var e = 0u; e < 4u; e++) {
    let row = e / 1u;
    let col = e % 1u;
    var acc = 0.0;
    for (var p = 0u; p < 16u; p++) {
      let prod = A[0u + row * 16u + p] * A[VB + 39u * P.batch + b * 16u + p * 1u + col];
      acc = acc + prod;
    }
    A[VB + 55u * P.batch + b * 4u + e] = acc;
  }
}

@compute @workgroup_size(64)
fn all(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch) { return; }
  all_of(i);
}

