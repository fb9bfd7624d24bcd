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

// ring: 1 passes; invariant region 1 values, 11 values per sample

const VB: u32 = 1u;

// the whole graph: one invocation per sample computes every value
fn all_of(b: u32) {
  // powc 2 [0] -> [2]
  for (var e = 0u; e < 2u; e++) {
    A[VB + 2u * P.batch + b * 2u + e] = sq(A[VB + 0u * P.batch + b * 2u + e]);
  }
  // sum[0] [1] -> []
  for (var e = 0u; e < 1u; e++) {
    var acc = 0.0;
    for (var r0 = 0u; r0 < 2u; r0++) {
      acc = acc + A[VB + 2u * P.batch + b * 2u + (r0 * 1u)];
    }
    A[VB + 4u * P.batch + b * 1u + e] = acc;
  }
  // sqrt [2] -> []
  for (var e = 0u; e < 1u; e++) {
    A[VB + 5u * P.batch + b * 1u + e] = sqrt_s(A[VB + 4u * P.batch + b * 1u + e]);
  }
  // sub [3, 4] -> []
  for (var e = 0u; e < 1u; e++) {
    A[VB + 6u * P.batch + b * 1u + e] = (A[VB + 5u * P.batch + b * 1u + e] - opaque(C[0u + e]));
  }
  // div [6, 7] -> []
  for (var e = 0u; e < 1u; e++) {
    A[VB + 7u * P.batch + b * 1u + e] = (sq(A[VB + 6u * P.batch + b * 1u + e]) / C[1u + e]);
  }
  // mul [15, 4] -> []
  for (var e = 0u; e < 1u; e++) {
    A[VB + 8u * P.batch + b * 1u + e] = ((((C[2u + e] * A[VB + 6u * P.batch + b * 1u + e]) * C[3u + e]) / A[VB + 5u * P.batch + b * 1u + e]) * C[0u + e]);
  }
  // mul [20, 0] -> [2]
  for (var e = 0u; e < 2u; e++) {
    let ix20 = 0u;
    A[VB + 9u * P.batch + b * 2u + e] = (A[VB + 8u * P.batch + b * 1u + ix20] * A[VB + 0u * P.batch + b * 2u + e]);
  }
}

@compute @workgroup_size(64)
fn all(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch) { return; }
  all_of(i);
}

// blob: 1 passes; invariant region 1 values, 20 values per sample

const VB: u32 = 1u;

// the whole graph: one invocation per sample computes every value
fn all_of(b: u32) {
  // matmul [1, 2] -> [2]
  for (var e = 0u; e < 2u; e++) {
    let row = e / 2u;
    let col = e % 2u;
    var acc = 0.0;
    for (var p = 0u; p < 8u; p++) {
      let prod = A[VB + 2u * P.batch + b * 8u + row * 8u + p] * C[0u + p * 2u + col];
      acc = acc + prod;
    }
    A[VB + 10u * P.batch + b * 2u + e] = acc;
  }
  // sub [0, 3] -> [2]
  for (var e = 0u; e < 2u; e++) {
    A[VB + 12u * P.batch + b * 2u + e] = (A[VB + 0u * P.batch + b * 2u + e] - opaque(A[VB + 10u * P.batch + b * 2u + e]));
  }
  // powc 2 [4] -> [2]
  for (var e = 0u; e < 2u; e++) {
    A[VB + 14u * P.batch + b * 2u + e] = sq(A[VB + 12u * P.batch + b * 2u + e]);
  }
  // sum[0] [5] -> []
  for (var e = 0u; e < 1u; e++) {
    var acc = 0.0;
    for (var r0 = 0u; r0 < 2u; r0++) {
      acc = acc + A[VB + 14u * P.batch + b * 2u + (r0 * 1u)];
    }
    A[VB + 16u * P.batch + b * 1u + e] = acc;
  }
  // div [6, 7] -> []
  for (var e = 0u; e < 1u; e++) {
    A[VB + 17u * P.batch + b * 1u + e] = (A[VB + 16u * P.batch + b * 1u + e] / C[16u + e]);
  }
  // mul [14, 4] -> [2]
  for (var e = 0u; e < 2u; e++) {
    let ix14 = 0u;
    A[VB + 18u * P.batch + b * 2u + e] = (C[17u + ix14] * A[VB + 12u * P.batch + b * 2u + e]);
  }
}

@compute @workgroup_size(64)
fn all(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch) { return; }
  all_of(i);
}

// left: 1 passes; invariant region 1 values, 8 values per sample

const VB: u32 = 1u;

// the whole graph: one invocation per sample computes every value
fn all_of(b: u32) {
  // mul [1, 3] -> []
  for (var e = 0u; e < 1u; e++) {
    let ix2 = ((0u + ((e) / 1u) % 1u * 1u) * 1u);
    A[VB + 2u * P.batch + b * 1u + e] = (C[0u + e] * A[VB + 0u * P.batch + b * 2u + ix2]);
  }
  // softplus [4] -> []
  for (var e = 0u; e < 1u; e++) {
    A[VB + 3u * P.batch + b * 1u + e] = softplus_s(A[VB + 2u * P.batch + b * 1u + e]);
  }
  // reshape [8] -> [1]
  for (var e = 0u; e < 1u; e++) {
    A[VB + 4u * P.batch + b * 1u + e] = (sigmoid_s(A[VB + 2u * P.batch + b * 1u + e]) * C[0u + e]);
  }
  // broadcast [10] -> [1]
  for (var e = 0u; e < 1u; e++) {
    let ix11 = 0u;
    A[VB + 5u * P.batch + b * 1u + e] = C[1u + ix11];
  }
  // concat axis=0 [9, 11] -> [2]
  for (var e = 0u; e < 2u; e++) {
    let c0 = (e / 1u) % 2u;
    var v = 0.0;
    if (c0 < 1u) { v = A[VB + 4u * P.batch + b * 1u + ((c0 - 0u) * 1u)]; }
    else if (c0 < 2u) { v = A[VB + 5u * P.batch + b * 1u + ((c0 - 1u) * 1u)]; }
    A[VB + 6u * P.batch + b * 2u + e] = v;
  }
}

@compute @workgroup_size(64)
fn all(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch) { return; }
  all_of(i);
}

// composed: 1 passes; invariant region 1 values, 39 values per sample

const VB: u32 = 1u;

// the whole graph: one invocation per sample computes every value
fn all_of(b: u32) {
  // powc 2 [0] -> [2]
  for (var e = 0u; e < 2u; e++) {
    A[VB + 2u * P.batch + b * 2u + e] = sq(A[VB + 0u * P.batch + b * 2u + e]);
  }
  // sum[0] [1] -> []
  for (var e = 0u; e < 1u; e++) {
    var acc = 0.0;
    for (var r0 = 0u; r0 < 2u; r0++) {
      acc = acc + A[VB + 2u * P.batch + b * 2u + (r0 * 1u)];
    }
    A[VB + 4u * P.batch + b * 1u + e] = acc;
  }
  // sqrt [2] -> []
  for (var e = 0u; e < 1u; e++) {
    A[VB + 5u * P.batch + b * 1u + e] = sqrt_s(A[VB + 4u * P.batch + b * 1u + e]);
  }
  // sub [3, 4] -> []
  for (var e = 0u; e < 1u; e++) {
    A[VB + 6u * P.batch + b * 1u + e] = (A[VB + 5u * P.batch + b * 1u + e] - opaque(C[36u + e]));
  }
  // sub [0, 11] -> [2]
  for (var e = 0u; e < 2u; e++) {
    A[VB + 7u * P.batch + b * 2u + e] = (A[VB + 0u * P.batch + b * 2u + e] - opaque(C[32u + e]));
  }
  // powc 2 [12] -> [2]
  for (var e = 0u; e < 2u; e++) {
    A[VB + 9u * P.batch + b * 2u + e] = sq(A[VB + 7u * P.batch + b * 2u + e]);
  }
  // sum[0] [13] -> []
  for (var e = 0u; e < 1u; e++) {
    var acc = 0.0;
    for (var r0 = 0u; r0 < 2u; r0++) {
      acc = acc + A[VB + 9u * P.batch + b * 2u + (r0 * 1u)];
    }
    A[VB + 11u * P.batch + b * 1u + e] = acc;
  }
  // reshape [17] -> [1]
  for (var e = 0u; e < 1u; e++) {
    A[VB + 12u * P.batch + b * 1u + e] = (-(A[VB + 11u * P.batch + b * 1u + e] / C[38u + e]));
  }
  // sub [0, 20] -> [2]
  for (var e = 0u; e < 2u; e++) {
    A[VB + 13u * P.batch + b * 2u + e] = (A[VB + 0u * P.batch + b * 2u + e] - opaque(C[34u + e]));
  }
  // powc 2 [21] -> [2]
  for (var e = 0u; e < 2u; e++) {
    A[VB + 15u * P.batch + b * 2u + e] = sq(A[VB + 13u * P.batch + b * 2u + e]);
  }
  // sum[0] [22] -> []
  for (var e = 0u; e < 1u; e++) {
    var acc = 0.0;
    for (var r0 = 0u; r0 < 2u; r0++) {
      acc = acc + A[VB + 15u * P.batch + b * 2u + (r0 * 1u)];
    }
    A[VB + 17u * P.batch + b * 1u + e] = acc;
  }
  // reshape [25] -> [1]
  for (var e = 0u; e < 1u; e++) {
    A[VB + 18u * P.batch + b * 1u + e] = (-(A[VB + 17u * P.batch + b * 1u + e] / C[38u + e]));
  }
  // concat axis=0 [18, 26] -> [2]
  for (var e = 0u; e < 2u; e++) {
    let c0 = (e / 1u) % 2u;
    var v = 0.0;
    if (c0 < 1u) { v = A[VB + 12u * P.batch + b * 1u + ((c0 - 0u) * 1u)]; }
    else if (c0 < 2u) { v = A[VB + 18u * P.batch + b * 1u + ((c0 - 1u) * 1u)]; }
    A[VB + 19u * P.batch + b * 2u + e] = v;
  }
  // max[0] [27] -> []
  for (var e = 0u; e < 1u; e++) {
    var acc = bitcast<f32>(0xff800000u);
    for (var r0 = 0u; r0 < 2u; r0++) {
      acc = max_number(acc, A[VB + 19u * P.batch + b * 2u + (r0 * 1u)]);
    }
    A[VB + 21u * P.batch + b * 1u + e] = acc;
  }
  // exp [32] -> [2]
  for (var e = 0u; e < 2u; e++) {
    let ix31 = 0u;
    A[VB + 22u * P.batch + b * 2u + e] = exp_s((A[VB + 19u * P.batch + b * 2u + e] - opaque(A[VB + 21u * P.batch + b * 1u + ix31])));
  }
  // sum[0] [33] -> []
  for (var e = 0u; e < 1u; e++) {
    var acc = 0.0;
    for (var r0 = 0u; r0 < 2u; r0++) {
      acc = acc + A[VB + 22u * P.batch + b * 2u + (r0 * 1u)];
    }
    A[VB + 24u * P.batch + b * 1u + e] = acc;
  }
  // mul [39, 41] -> []
  for (var e = 0u; e < 1u; e++) {
    let ix40 = ((0u + ((e) / 1u) % 1u * 1u) * 1u);
    A[VB + 25u * P.batch + b * 1u + e] = (C[39u + e] * A[VB + 0u * P.batch + b * 2u + ix40]);
  }
  // add [38, 45] -> []
  for (var e = 0u; e < 1u; e++) {
    A[VB + 26u * P.batch + b * 1u + e] = (((sq(A[VB + 6u * P.batch + b * 1u + e]) / C[37u + e]) + opaque((-(A[VB + 21u * P.batch + b * 1u + e] + opaque(log_s(A[VB + 24u * P.batch + b * 1u + e])))))) + opaque((-(C[38u + e] * softplus_s(A[VB + 25u * P.batch + b * 1u + e])))));
  }
  // reshape [52] -> [1]
  for (var e = 0u; e < 1u; e++) {
    A[VB + 27u * P.batch + b * 1u + e] = (((-C[38u + e]) * sigmoid_s(A[VB + 25u * P.batch + b * 1u + e])) * C[39u + e]);
  }
  // broadcast [54] -> [1]
  for (var e = 0u; e < 1u; e++) {
    let ix55 = 0u;
    A[VB + 28u * P.batch + b * 1u + e] = C[41u + ix55];
  }
  // concat axis=0 [53, 55] -> [2]
  for (var e = 0u; e < 2u; e++) {
    let c0 = (e / 1u) % 2u;
    var v = 0.0;
    if (c0 < 1u) { v = A[VB + 27u * P.batch + b * 1u + ((c0 - 0u) * 1u)]; }
    else if (c0 < 2u) { v = A[VB + 28u * P.batch + b * 1u + ((c0 - 1u) * 1u)]; }
    A[VB + 29u * P.batch + b * 2u + e] = v;
  }
  // div [48, 34] -> []
  for (var e = 0u; e < 1u; e++) {
    A[VB + 31u * P.batch + b * 1u + e] = (C[40u + e] / A[VB + 24u * P.batch + b * 1u + e]);
  }
  // mul [59, 33] -> [2]
  for (var e = 0u; e < 2u; e++) {
    let ix59 = 0u;
    A[VB + 32u * P.batch + b * 2u + e] = (A[VB + 31u * P.batch + b * 1u + ix59] * A[VB + 22u * P.batch + b * 2u + e]);
  }
  // mul [65, 4] -> []
  for (var e = 0u; e < 1u; e++) {
    let ix62 = ((1u + ((e) / 1u) % 1u * 1u) * 1u);
    A[VB + 34u * P.batch + b * 1u + e] = (((-A[VB + 32u * P.batch + b * 2u + ix62]) / C[38u + e]) * C[36u + e]);
  }
  // mul [75, 4] -> []
  for (var e = 0u; e < 1u; e++) {
    let ix61 = ((0u + ((e) / 1u) % 1u * 1u) * 1u);
    A[VB + 35u * P.batch + b * 1u + e] = (((-A[VB + 32u * P.batch + b * 2u + ix61]) / C[38u + e]) * C[36u + e]);
  }
  // mul [86, 4] -> []
  for (var e = 0u; e < 1u; e++) {
    A[VB + 36u * P.batch + b * 1u + e] = ((((C[42u + e] * A[VB + 6u * P.batch + b * 1u + e]) * C[38u + e]) / A[VB + 5u * P.batch + b * 1u + e]) * C[36u + e]);
  }
  // add [81, 91] -> [2]
  for (var e = 0u; e < 2u; e++) {
    let ix70 = 0u;
    let ix79 = 0u;
    let ix90 = 0u;
    A[VB + 37u * P.batch + b * 2u + e] = (((A[VB + 29u * P.batch + b * 2u + e] + opaque((A[VB + 34u * P.batch + b * 1u + ix70] * A[VB + 13u * P.batch + b * 2u + e]))) + opaque((A[VB + 35u * P.batch + b * 1u + ix79] * A[VB + 7u * P.batch + b * 2u + e]))) + opaque((A[VB + 36u * P.batch + b * 1u + ix90] * A[VB + 0u * P.batch + b * 2u + e])));
  }
}

@compute @workgroup_size(64)
fn all(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch) { return; }
  all_of(i);
}

