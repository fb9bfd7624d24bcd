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

// c: 1 passes; invariant region 10 values, 814 values per sample

const VB: u32 = 10u;

// the whole graph: one invocation per sample computes every value
fn all_of(b: u32) {
  // concat axis=1 [3, 0, 4] -> [1, 7, 4]
  for (var e = 0u; e < 28u + P.zero; e++) {
    let c0 = (e / 28u) % 1u;
    let c1 = (e / 4u) % 7u;
    let c2 = (e / 1u) % 4u;
    var v = 0.0;
    if (c1 < 1u) { v = C[7u + (c0 * 4u + (c1 - 0u) * 4u + c2 * 1u)]; }
    else if (c1 < 5u) { v = A[VB + 0u * P.batch + b * 16u + (c0 * 16u + (c1 - 1u) * 4u + c2 * 1u)]; }
    else if (c1 < 7u) { v = C[11u + (c0 * 8u + (c1 - 5u) * 4u + c2 * 1u)]; }
    A[VB + 16u * P.batch + b * 28u + e] = v;
  }
  // concat axis=2 [2, 5, 6] -> [1, 7, 7]
  for (var e = 0u; e < 49u + P.zero; e++) {
    let c0 = (e / 49u) % 1u;
    let c1 = (e / 7u) % 7u;
    let c2 = (e / 1u) % 7u;
    var v = 0.0;
    if (c2 < 1u) { v = C[0u + (c0 * 7u + c1 * 1u + (c2 - 0u) * 1u)]; }
    else if (c2 < 5u) { v = A[VB + 16u * P.batch + b * 28u + (c0 * 28u + c1 * 4u + (c2 - 1u) * 1u)]; }
    else if (c2 < 7u) { v = C[19u + (c0 * 14u + c1 * 2u + (c2 - 5u) * 1u)]; }
    A[VB + 44u * P.batch + b * 49u + e] = v;
  }
  // reshape [10] -> [1, 3, 7]
  for (var e = 0u; e < 21u + P.zero; e++) {
    let ix10 = (((e) / 21u) % 1u * 42u + ((e) / 7u) % 3u * 14u + (0u + ((e) / 7u) % 1u * 1u) * 7u + ((e) / 1u) % 7u * 1u);
    let ix8 = (((ix10) / 42u) % 1u * 49u + (0u + ((ix10) / 7u) % 6u * 1u) * 7u + ((ix10) / 1u) % 7u * 1u);
    A[VB + 93u * P.batch + b * 21u + e] = A[VB + 44u * P.batch + b * 49u + ix8];
  }
  // reshape [14] -> [1, 1, 9]
  for (var e = 0u; e < 9u + P.zero; e++) {
    let ix14 = (((e) / 9u) % 1u * 18u + ((e) / 3u) % 3u * 6u + ((e) / 1u) % 3u * 2u + (0u + ((e) / 1u) % 1u * 1u) * 1u);
    let ix12 = (((ix14) / 18u) % 1u * 21u + ((ix14) / 6u) % 3u * 7u + (0u + ((ix14) / 1u) % 6u * 1u) * 1u);
    A[VB + 114u * P.batch + b * 9u + e] = A[VB + 93u * P.batch + b * 21u + ix12];
  }
  // reshape [19] -> [1, 1, 9]
  for (var e = 0u; e < 9u + P.zero; e++) {
    let ix19 = (((e) / 9u) % 1u * 18u + ((e) / 3u) % 3u * 6u + ((e) / 1u) % 3u * 2u + (0u + ((e) / 1u) % 1u * 1u) * 1u);
    let ix17 = (((ix19) / 18u) % 1u * 21u + ((ix19) / 6u) % 3u * 7u + (1u + ((ix19) / 1u) % 6u * 1u) * 1u);
    A[VB + 123u * P.batch + b * 9u + e] = A[VB + 93u * P.batch + b * 21u + ix17];
  }
  // reshape [24] -> [1, 3, 7]
  for (var e = 0u; e < 21u + P.zero; e++) {
    let ix24 = (((e) / 21u) % 1u * 42u + ((e) / 7u) % 3u * 14u + (0u + ((e) / 7u) % 1u * 1u) * 7u + ((e) / 1u) % 7u * 1u);
    let ix22 = (((ix24) / 42u) % 1u * 49u + (1u + ((ix24) / 7u) % 6u * 1u) * 7u + ((ix24) / 1u) % 7u * 1u);
    A[VB + 132u * P.batch + b * 21u + e] = A[VB + 44u * P.batch + b * 49u + ix22];
  }
  // reshape [28] -> [1, 1, 9]
  for (var e = 0u; e < 9u + P.zero; e++) {
    let ix28 = (((e) / 9u) % 1u * 18u + ((e) / 3u) % 3u * 6u + ((e) / 1u) % 3u * 2u + (0u + ((e) / 1u) % 1u * 1u) * 1u);
    let ix26 = (((ix28) / 18u) % 1u * 21u + ((ix28) / 6u) % 3u * 7u + (0u + ((ix28) / 1u) % 6u * 1u) * 1u);
    A[VB + 153u * P.batch + b * 9u + e] = A[VB + 132u * P.batch + b * 21u + ix26];
  }
  // reshape [33] -> [1, 1, 9]
  for (var e = 0u; e < 9u + P.zero; e++) {
    let ix33 = (((e) / 9u) % 1u * 18u + ((e) / 3u) % 3u * 6u + ((e) / 1u) % 3u * 2u + (0u + ((e) / 1u) % 1u * 1u) * 1u);
    let ix31 = (((ix33) / 18u) % 1u * 21u + ((ix33) / 6u) % 3u * 7u + (1u + ((ix33) / 1u) % 6u * 1u) * 1u);
    A[VB + 162u * P.batch + b * 9u + e] = A[VB + 132u * P.batch + b * 21u + ix31];
  }
  // concat axis=1 [16, 21, 30, 35] -> [1, 4, 9]
  for (var e = 0u; e < 36u + P.zero; e++) {
    let c0 = (e / 36u) % 1u;
    let c1 = (e / 9u) % 4u;
    let c2 = (e / 1u) % 9u;
    var v = 0.0;
    if (c1 < 1u) { v = A[VB + 114u * P.batch + b * 9u + (c0 * 9u + (c1 - 0u) * 9u + c2 * 1u)]; }
    else if (c1 < 2u) { v = A[VB + 123u * P.batch + b * 9u + (c0 * 9u + (c1 - 1u) * 9u + c2 * 1u)]; }
    else if (c1 < 3u) { v = A[VB + 153u * P.batch + b * 9u + (c0 * 9u + (c1 - 2u) * 9u + c2 * 1u)]; }
    else if (c1 < 4u) { v = A[VB + 162u * P.batch + b * 9u + (c0 * 9u + (c1 - 3u) * 9u + c2 * 1u)]; }
    A[VB + 171u * P.batch + b * 36u + e] = v;
  }
  // matmul [1, 37] -> [2, 9]
  for (var e = 0u; e < 18u + P.zero; e++) {
    let row = e / 9u;
    let col = e % 9u;
    var acc = 0.0;
    for (var p = 0u; p < 4u + P.zero; p++) {
      let prod = A[0u + row * 4u + p] * A[VB + 171u * P.batch + b * 36u + p * 9u + col];
      acc = acc + prod;
    }
    A[VB + 207u * P.batch + b * 18u + e] = acc;
  }
  // reshape [42] -> [2, 3, 3]
  for (var e = 0u; e < 18u + P.zero; e++) {
    let ix41 = (((e) / 9u) % 2u * 1u);
    A[VB + 225u * P.batch + b * 18u + e] = (A[VB + 207u * P.batch + b * 18u + e] + opaque(A[8u + ix41]));
  }
  // sigmoid [43] -> [2, 3, 3]
  for (var e = 0u; e < 18u + P.zero; e++) {
    A[VB + 243u * P.batch + b * 18u + e] = sigmoid_s(A[VB + 225u * P.batch + b * 18u + e]);
  }
  // mul [43, 44] -> [2, 3, 3]
  for (var e = 0u; e < 18u + P.zero; e++) {
    A[VB + 261u * P.batch + b * 18u + e] = (A[VB + 225u * P.batch + b * 18u + e] * A[VB + 243u * P.batch + b * 18u + e]);
  }
  // sum[0, 1, 2] [45] -> []
  for (var e = 0u; e < 1u; e++) {
    var acc = 0.0;
    for (var r0 = 0u; r0 < 2u + P.zero; r0++) {
      for (var r1 = 0u; r1 < 3u + P.zero; r1++) {
        for (var r2 = 0u; r2 < 3u + P.zero; r2++) {
          acc = acc + A[VB + 261u * P.batch + b * 18u + (r0 * 9u + r1 * 3u + r2 * 1u)];
        }
      }
    }
    A[VB + 279u * P.batch + b * 1u + e] = acc;
  }
  // reshape [53] -> [2, 9]
  for (var e = 0u; e < 18u + P.zero; e++) {
    let ix49 = 0u;
    A[VB + 280u * P.batch + b * 18u + e] = (A[VB + 243u * P.batch + b * 18u + e] + opaque((A[VB + 225u * P.batch + b * 18u + e] * (A[VB + 243u * P.batch + b * 18u + e] * (C[33u + ix49] - opaque(A[VB + 243u * P.batch + b * 18u + e]))))));
  }
  // transpose[1, 0] [1] -> [4, 2]
  for (var e = 0u; e < 8u + P.zero; e++) {
    let ix55 = (((e) / 2u) % 4u * 1u + ((e) / 1u) % 2u * 4u);
    A[VB + 298u * P.batch + b * 8u + e] = A[0u + ix55];
  }
  // matmul [55, 54] -> [4, 9]
  for (var e = 0u; e < 36u + P.zero; e++) {
    let row = e / 9u;
    let col = e % 9u;
    var acc = 0.0;
    for (var p = 0u; p < 2u + P.zero; p++) {
      let prod = A[VB + 298u * P.batch + b * 8u + row * 2u + p] * A[VB + 280u * P.batch + b * 18u + p * 9u + col];
      acc = acc + prod;
    }
    A[VB + 306u * P.batch + b * 36u + e] = acc;
  }
  // reshape [61] -> [1, 3, 3, 1]
  for (var e = 0u; e < 9u + P.zero; e++) {
    let ix61 = (((e) / 9u) % 1u * 36u + (3u + ((e) / 9u) % 1u * 1u) * 9u + ((e) / 1u) % 9u * 1u);
    A[VB + 342u * P.batch + b * 9u + e] = A[VB + 306u * P.batch + b * 36u + ix61];
  }
  // broadcast [64] -> [1, 3, 3, 1]
  for (var e = 0u; e < 9u + P.zero; e++) {
    let ix65 = 0u;
    A[VB + 351u * P.batch + b * 9u + e] = C[34u + ix65];
  }
  // concat axis=3 [63, 65] -> [1, 3, 3, 2]
  for (var e = 0u; e < 18u + P.zero; e++) {
    let c0 = (e / 18u) % 1u;
    let c1 = (e / 6u) % 3u;
    let c2 = (e / 2u) % 3u;
    let c3 = (e / 1u) % 2u;
    var v = 0.0;
    if (c3 < 1u) { v = A[VB + 342u * P.batch + b * 9u + (c0 * 9u + c1 * 3u + c2 * 1u + (c3 - 0u) * 1u)]; }
    else if (c3 < 2u) { v = A[VB + 351u * P.batch + b * 9u + (c0 * 9u + c1 * 3u + c2 * 1u + (c3 - 1u) * 1u)]; }
    A[VB + 360u * P.batch + b * 18u + e] = v;
  }
  // broadcast [64] -> [1, 3, 1]
  for (var e = 0u; e < 3u + P.zero; e++) {
    let ix68 = 0u;
    A[VB + 378u * P.batch + b * 3u + e] = C[34u + ix68];
  }
  // concat axis=2 [68, 67] -> [1, 3, 7]
  for (var e = 0u; e < 21u + P.zero; e++) {
    let c0 = (e / 21u) % 1u;
    let c1 = (e / 7u) % 3u;
    let c2 = (e / 1u) % 7u;
    var v = 0.0;
    if (c2 < 1u) { v = A[VB + 378u * P.batch + b * 3u + (c0 * 3u + c1 * 1u + (c2 - 0u) * 1u)]; }
    else if (c2 < 7u) { v = A[VB + 360u * P.batch + b * 18u + (c0 * 18u + c1 * 6u + (c2 - 1u) * 1u)]; }
    A[VB + 381u * P.batch + b * 21u + e] = v;
  }
  // reshape [60] -> [1, 3, 3, 1]
  for (var e = 0u; e < 9u + P.zero; e++) {
    let ix60 = (((e) / 9u) % 1u * 36u + (2u + ((e) / 9u) % 1u * 1u) * 9u + ((e) / 1u) % 9u * 1u);
    A[VB + 402u * P.batch + b * 9u + e] = A[VB + 306u * P.batch + b * 36u + ix60];
  }
  // concat axis=3 [71, 65] -> [1, 3, 3, 2]
  for (var e = 0u; e < 18u + P.zero; e++) {
    let c0 = (e / 18u) % 1u;
    let c1 = (e / 6u) % 3u;
    let c2 = (e / 2u) % 3u;
    let c3 = (e / 1u) % 2u;
    var v = 0.0;
    if (c3 < 1u) { v = A[VB + 402u * P.batch + b * 9u + (c0 * 9u + c1 * 3u + c2 * 1u + (c3 - 0u) * 1u)]; }
    else if (c3 < 2u) { v = A[VB + 351u * P.batch + b * 9u + (c0 * 9u + c1 * 3u + c2 * 1u + (c3 - 1u) * 1u)]; }
    A[VB + 411u * P.batch + b * 18u + e] = v;
  }
  // concat axis=2 [73, 68] -> [1, 3, 7]
  for (var e = 0u; e < 21u + P.zero; e++) {
    let c0 = (e / 21u) % 1u;
    let c1 = (e / 7u) % 3u;
    let c2 = (e / 1u) % 7u;
    var v = 0.0;
    if (c2 < 6u) { v = A[VB + 411u * P.batch + b * 18u + (c0 * 18u + c1 * 6u + (c2 - 0u) * 1u)]; }
    else if (c2 < 7u) { v = A[VB + 378u * P.batch + b * 3u + (c0 * 3u + c1 * 1u + (c2 - 6u) * 1u)]; }
    A[VB + 429u * P.batch + b * 21u + e] = v;
  }
  // reshape [75] -> [1, 3, 1, 7]
  for (var e = 0u; e < 21u + P.zero; e++) {
    A[VB + 450u * P.batch + b * 21u + e] = (A[VB + 381u * P.batch + b * 21u + e] + opaque(A[VB + 429u * P.batch + b * 21u + e]));
  }
  // broadcast [64] -> [1, 3, 1, 7]
  for (var e = 0u; e < 21u + P.zero; e++) {
    let ix77 = 0u;
    A[VB + 471u * P.batch + b * 21u + e] = C[34u + ix77];
  }
  // concat axis=2 [76, 77] -> [1, 3, 2, 7]
  for (var e = 0u; e < 42u + P.zero; e++) {
    let c0 = (e / 42u) % 1u;
    let c1 = (e / 14u) % 3u;
    let c2 = (e / 7u) % 2u;
    let c3 = (e / 1u) % 7u;
    var v = 0.0;
    if (c2 < 1u) { v = A[VB + 450u * P.batch + b * 21u + (c0 * 21u + c1 * 7u + (c2 - 0u) * 7u + c3 * 1u)]; }
    else if (c2 < 2u) { v = A[VB + 471u * P.batch + b * 21u + (c0 * 21u + c1 * 7u + (c2 - 1u) * 7u + c3 * 1u)]; }
    A[VB + 492u * P.batch + b * 42u + e] = v;
  }
  // broadcast [64] -> [1, 1, 7]
  for (var e = 0u; e < 7u + P.zero; e++) {
    let ix80 = 0u;
    A[VB + 534u * P.batch + b * 7u + e] = C[34u + ix80];
  }
  // concat axis=1 [80, 79] -> [1, 7, 7]
  for (var e = 0u; e < 49u + P.zero; e++) {
    let c0 = (e / 49u) % 1u;
    let c1 = (e / 7u) % 7u;
    let c2 = (e / 1u) % 7u;
    var v = 0.0;
    if (c1 < 1u) { v = A[VB + 534u * P.batch + b * 7u + (c0 * 7u + (c1 - 0u) * 7u + c2 * 1u)]; }
    else if (c1 < 7u) { v = A[VB + 492u * P.batch + b * 42u + (c0 * 42u + (c1 - 1u) * 7u + c2 * 1u)]; }
    A[VB + 541u * P.batch + b * 49u + e] = v;
  }
  // reshape [59] -> [1, 3, 3, 1]
  for (var e = 0u; e < 9u + P.zero; e++) {
    let ix59 = (((e) / 9u) % 1u * 36u + (1u + ((e) / 9u) % 1u * 1u) * 9u + ((e) / 1u) % 9u * 1u);
    A[VB + 590u * P.batch + b * 9u + e] = A[VB + 306u * P.batch + b * 36u + ix59];
  }
  // concat axis=3 [83, 65] -> [1, 3, 3, 2]
  for (var e = 0u; e < 18u + P.zero; e++) {
    let c0 = (e / 18u) % 1u;
    let c1 = (e / 6u) % 3u;
    let c2 = (e / 2u) % 3u;
    let c3 = (e / 1u) % 2u;
    var v = 0.0;
    if (c3 < 1u) { v = A[VB + 590u * P.batch + b * 9u + (c0 * 9u + c1 * 3u + c2 * 1u + (c3 - 0u) * 1u)]; }
    else if (c3 < 2u) { v = A[VB + 351u * P.batch + b * 9u + (c0 * 9u + c1 * 3u + c2 * 1u + (c3 - 1u) * 1u)]; }
    A[VB + 599u * P.batch + b * 18u + e] = v;
  }
  // concat axis=2 [68, 85] -> [1, 3, 7]
  for (var e = 0u; e < 21u + P.zero; e++) {
    let c0 = (e / 21u) % 1u;
    let c1 = (e / 7u) % 3u;
    let c2 = (e / 1u) % 7u;
    var v = 0.0;
    if (c2 < 1u) { v = A[VB + 378u * P.batch + b * 3u + (c0 * 3u + c1 * 1u + (c2 - 0u) * 1u)]; }
    else if (c2 < 7u) { v = A[VB + 599u * P.batch + b * 18u + (c0 * 18u + c1 * 6u + (c2 - 1u) * 1u)]; }
    A[VB + 617u * P.batch + b * 21u + e] = v;
  }
  // reshape [58] -> [1, 3, 3, 1]
  for (var e = 0u; e < 9u + P.zero; e++) {
    let ix58 = (((e) / 9u) % 1u * 36u + (0u + ((e) / 9u) % 1u * 1u) * 9u + ((e) / 1u) % 9u * 1u);
    A[VB + 638u * P.batch + b * 9u + e] = A[VB + 306u * P.batch + b * 36u + ix58];
  }
  // concat axis=3 [88, 65] -> [1, 3, 3, 2]
  for (var e = 0u; e < 18u + P.zero; e++) {
    let c0 = (e / 18u) % 1u;
    let c1 = (e / 6u) % 3u;
    let c2 = (e / 2u) % 3u;
    let c3 = (e / 1u) % 2u;
    var v = 0.0;
    if (c3 < 1u) { v = A[VB + 638u * P.batch + b * 9u + (c0 * 9u + c1 * 3u + c2 * 1u + (c3 - 0u) * 1u)]; }
    else if (c3 < 2u) { v = A[VB + 351u * P.batch + b * 9u + (c0 * 9u + c1 * 3u + c2 * 1u + (c3 - 1u) * 1u)]; }
    A[VB + 647u * P.batch + b * 18u + e] = v;
  }
  // concat axis=2 [90, 68] -> [1, 3, 7]
  for (var e = 0u; e < 21u + P.zero; e++) {
    let c0 = (e / 21u) % 1u;
    let c1 = (e / 7u) % 3u;
    let c2 = (e / 1u) % 7u;
    var v = 0.0;
    if (c2 < 6u) { v = A[VB + 647u * P.batch + b * 18u + (c0 * 18u + c1 * 6u + (c2 - 0u) * 1u)]; }
    else if (c2 < 7u) { v = A[VB + 378u * P.batch + b * 3u + (c0 * 3u + c1 * 1u + (c2 - 6u) * 1u)]; }
    A[VB + 665u * P.batch + b * 21u + e] = v;
  }
  // reshape [92] -> [1, 3, 1, 7]
  for (var e = 0u; e < 21u + P.zero; e++) {
    A[VB + 686u * P.batch + b * 21u + e] = (A[VB + 617u * P.batch + b * 21u + e] + opaque(A[VB + 665u * P.batch + b * 21u + e]));
  }
  // concat axis=2 [93, 77] -> [1, 3, 2, 7]
  for (var e = 0u; e < 42u + P.zero; e++) {
    let c0 = (e / 42u) % 1u;
    let c1 = (e / 14u) % 3u;
    let c2 = (e / 7u) % 2u;
    let c3 = (e / 1u) % 7u;
    var v = 0.0;
    if (c2 < 1u) { v = A[VB + 686u * P.batch + b * 21u + (c0 * 21u + c1 * 7u + (c2 - 0u) * 7u + c3 * 1u)]; }
    else if (c2 < 2u) { v = A[VB + 471u * P.batch + b * 21u + (c0 * 21u + c1 * 7u + (c2 - 1u) * 7u + c3 * 1u)]; }
    A[VB + 707u * P.batch + b * 42u + e] = v;
  }
  // concat axis=1 [95, 80] -> [1, 7, 7]
  for (var e = 0u; e < 49u + P.zero; e++) {
    let c0 = (e / 49u) % 1u;
    let c1 = (e / 7u) % 7u;
    let c2 = (e / 1u) % 7u;
    var v = 0.0;
    if (c1 < 6u) { v = A[VB + 707u * P.batch + b * 42u + (c0 * 42u + (c1 - 0u) * 7u + c2 * 1u)]; }
    else if (c1 < 7u) { v = A[VB + 534u * P.batch + b * 7u + (c0 * 7u + (c1 - 6u) * 7u + c2 * 1u)]; }
    A[VB + 749u * P.batch + b * 49u + e] = v;
  }
  // slice axis=1 start=1 [98] -> [1, 4, 4]
  for (var e = 0u; e < 16u + P.zero; e++) {
    let ix99 = (((e) / 16u) % 1u * 28u + (1u + ((e) / 4u) % 4u * 1u) * 4u + ((e) / 1u) % 4u * 1u);
    let ix98 = (((ix99) / 28u) % 1u * 49u + ((ix99) / 4u) % 7u * 7u + (1u + ((ix99) / 1u) % 4u * 1u) * 1u);
    A[VB + 798u * P.batch + b * 16u + e] = (A[VB + 541u * P.batch + b * 49u + ix98] + opaque(A[VB + 749u * P.batch + b * 49u + ix98]));
  }
}

@compute @workgroup_size(64)
fn all(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch) { return; }
  all_of(i);
}

// p: 1 passes; invariant region 1 values, 397 values per sample

const VB: u32 = 1u;

// the whole graph: one invocation per sample computes every value
fn all_of(b: u32) {
  // concat axis=1 [0, 1] -> [1, 5, 4]
  for (var e = 0u; e < 20u + P.zero; e++) {
    let c0 = (e / 20u) % 1u;
    let c1 = (e / 4u) % 5u;
    let c2 = (e / 1u) % 4u;
    var v = 0.0;
    if (c1 < 4u) { v = A[VB + 0u * P.batch + b * 16u + (c0 * 16u + (c1 - 0u) * 4u + c2 * 1u)]; }
    else if (c1 < 5u) { v = C[0u + (c0 * 4u + (c1 - 4u) * 4u + c2 * 1u)]; }
    A[VB + 16u * P.batch + b * 20u + e] = v;
  }
  // concat axis=2 [2, 3] -> [1, 5, 5]
  for (var e = 0u; e < 25u + P.zero; e++) {
    let c0 = (e / 25u) % 1u;
    let c1 = (e / 5u) % 5u;
    let c2 = (e / 1u) % 5u;
    var v = 0.0;
    if (c2 < 4u) { v = A[VB + 16u * P.batch + b * 20u + (c0 * 20u + c1 * 4u + (c2 - 0u) * 1u)]; }
    else if (c2 < 5u) { v = C[4u + (c0 * 5u + c1 * 1u + (c2 - 4u) * 1u)]; }
    A[VB + 36u * P.batch + b * 25u + e] = v;
  }
  // reshape [7] -> [1, 2, 5]
  for (var e = 0u; e < 10u + P.zero; e++) {
    let ix7 = (((e) / 10u) % 1u * 20u + ((e) / 5u) % 2u * 10u + (0u + ((e) / 5u) % 1u * 1u) * 5u + ((e) / 1u) % 5u * 1u);
    let ix5 = (((ix7) / 20u) % 1u * 25u + (0u + ((ix7) / 5u) % 4u * 1u) * 5u + ((ix7) / 1u) % 5u * 1u);
    A[VB + 61u * P.batch + b * 10u + e] = A[VB + 36u * P.batch + b * 25u + ix5];
  }
  // reshape [11] -> [1, 1, 4]
  for (var e = 0u; e < 4u + P.zero; e++) {
    let ix11 = (((e) / 4u) % 1u * 8u + ((e) / 2u) % 2u * 4u + ((e) / 1u) % 2u * 2u + (0u + ((e) / 1u) % 1u * 1u) * 1u);
    let ix9 = (((ix11) / 8u) % 1u * 10u + ((ix11) / 4u) % 2u * 5u + (0u + ((ix11) / 1u) % 4u * 1u) * 1u);
    A[VB + 71u * P.batch + b * 4u + e] = A[VB + 61u * P.batch + b * 10u + ix9];
  }
  // reshape [16] -> [1, 1, 4]
  for (var e = 0u; e < 4u + P.zero; e++) {
    let ix16 = (((e) / 4u) % 1u * 8u + ((e) / 2u) % 2u * 4u + ((e) / 1u) % 2u * 2u + (0u + ((e) / 1u) % 1u * 1u) * 1u);
    let ix14 = (((ix16) / 8u) % 1u * 10u + ((ix16) / 4u) % 2u * 5u + (1u + ((ix16) / 1u) % 4u * 1u) * 1u);
    A[VB + 75u * P.batch + b * 4u + e] = A[VB + 61u * P.batch + b * 10u + ix14];
  }
  // reshape [21] -> [1, 2, 5]
  for (var e = 0u; e < 10u + P.zero; e++) {
    let ix21 = (((e) / 10u) % 1u * 20u + ((e) / 5u) % 2u * 10u + (0u + ((e) / 5u) % 1u * 1u) * 5u + ((e) / 1u) % 5u * 1u);
    let ix19 = (((ix21) / 20u) % 1u * 25u + (1u + ((ix21) / 5u) % 4u * 1u) * 5u + ((ix21) / 1u) % 5u * 1u);
    A[VB + 79u * P.batch + b * 10u + e] = A[VB + 36u * P.batch + b * 25u + ix19];
  }
  // reshape [25] -> [1, 1, 4]
  for (var e = 0u; e < 4u + P.zero; e++) {
    let ix25 = (((e) / 4u) % 1u * 8u + ((e) / 2u) % 2u * 4u + ((e) / 1u) % 2u * 2u + (0u + ((e) / 1u) % 1u * 1u) * 1u);
    let ix23 = (((ix25) / 8u) % 1u * 10u + ((ix25) / 4u) % 2u * 5u + (0u + ((ix25) / 1u) % 4u * 1u) * 1u);
    A[VB + 89u * P.batch + b * 4u + e] = A[VB + 79u * P.batch + b * 10u + ix23];
  }
  // reshape [30] -> [1, 1, 4]
  for (var e = 0u; e < 4u + P.zero; e++) {
    let ix30 = (((e) / 4u) % 1u * 8u + ((e) / 2u) % 2u * 4u + ((e) / 1u) % 2u * 2u + (0u + ((e) / 1u) % 1u * 1u) * 1u);
    let ix28 = (((ix30) / 8u) % 1u * 10u + ((ix30) / 4u) % 2u * 5u + (1u + ((ix30) / 1u) % 4u * 1u) * 1u);
    A[VB + 93u * P.batch + b * 4u + e] = A[VB + 79u * P.batch + b * 10u + ix28];
  }
  // concat axis=1 [13, 18, 27, 32] -> [1, 4, 4]
  for (var e = 0u; e < 16u + P.zero; e++) {
    let c0 = (e / 16u) % 1u;
    let c1 = (e / 4u) % 4u;
    let c2 = (e / 1u) % 4u;
    var v = 0.0;
    if (c1 < 1u) { v = A[VB + 71u * P.batch + b * 4u + (c0 * 4u + (c1 - 0u) * 4u + c2 * 1u)]; }
    else if (c1 < 2u) { v = A[VB + 75u * P.batch + b * 4u + (c0 * 4u + (c1 - 1u) * 4u + c2 * 1u)]; }
    else if (c1 < 3u) { v = A[VB + 89u * P.batch + b * 4u + (c0 * 4u + (c1 - 2u) * 4u + c2 * 1u)]; }
    else if (c1 < 4u) { v = A[VB + 93u * P.batch + b * 4u + (c0 * 4u + (c1 - 3u) * 4u + c2 * 1u)]; }
    A[VB + 97u * P.batch + b * 16u + e] = v;
  }
  // max[1] [33] -> [1, 4]
  for (var e = 0u; e < 4u + P.zero; e++) {
    let k0 = (e / 4u) % 1u;
    let k1 = (e / 1u) % 4u;
    var acc = bitcast<f32>(0xff800000u);
    for (var r1 = 0u; r1 < 4u + P.zero; r1++) {
      acc = max_number(acc, A[VB + 97u * P.batch + b * 16u + (k0 * 16u + r1 * 4u + k1 * 1u)]);
    }
    A[VB + 113u * P.batch + b * 4u + e] = acc;
  }
  // powc 2 [35] -> [1, 2, 2]
  for (var e = 0u; e < 4u + P.zero; e++) {
    A[VB + 117u * P.batch + b * 4u + e] = sq(A[VB + 113u * P.batch + b * 4u + e]);
  }
  // sum[0, 1, 2] [36] -> []
  for (var e = 0u; e < 1u; e++) {
    var acc = 0.0;
    for (var r0 = 0u; r0 < 1u; r0++) {
      for (var r1 = 0u; r1 < 2u + P.zero; r1++) {
        for (var r2 = 0u; r2 < 2u + P.zero; r2++) {
          acc = acc + A[VB + 117u * P.batch + b * 4u + (r0 * 4u + r1 * 2u + r2 * 1u)];
        }
      }
    }
    A[VB + 121u * P.batch + b * 1u + e] = acc;
  }
  // ge [33, 46] -> [1, 4, 4]
  for (var e = 0u; e < 16u + P.zero; e++) {
    let ix46 = (((e) / 1u) % 4u * 1u);
    A[VB + 122u * P.batch + b * 16u + e] = flag(A[VB + 97u * P.batch + b * 16u + e] >= A[VB + 113u * P.batch + b * 4u + ix46]);
  }
  // sum[1] [47] -> [1, 4]
  for (var e = 0u; e < 4u + P.zero; e++) {
    let k0 = (e / 4u) % 1u;
    let k1 = (e / 1u) % 4u;
    var acc = 0.0;
    for (var r1 = 0u; r1 < 4u + P.zero; r1++) {
      acc = acc + A[VB + 122u * P.batch + b * 16u + (k0 * 16u + r1 * 4u + k1 * 1u)];
    }
    A[VB + 138u * P.batch + b * 4u + e] = acc;
  }
  // reshape [49] -> [1, 1, 4]
  for (var e = 0u; e < 4u + P.zero; e++) {
    let ix42 = 0u;
    A[VB + 142u * P.batch + b * 4u + e] = ((C[9u + ix42] * A[VB + 113u * P.batch + b * 4u + e]) / A[VB + 138u * P.batch + b * 4u + e]);
  }
  // mul [51, 47] -> [1, 4, 4]
  for (var e = 0u; e < 16u + P.zero; e++) {
    let ix51 = (((e) / 1u) % 4u * 1u);
    A[VB + 146u * P.batch + b * 16u + e] = (A[VB + 142u * P.batch + b * 4u + ix51] * A[VB + 122u * P.batch + b * 16u + e]);
  }
  // reshape [56] -> [1, 2, 2, 1]
  for (var e = 0u; e < 4u + P.zero; e++) {
    let ix56 = (((e) / 4u) % 1u * 16u + (3u + ((e) / 4u) % 1u * 1u) * 4u + ((e) / 1u) % 4u * 1u);
    A[VB + 162u * P.batch + b * 4u + e] = A[VB + 146u * P.batch + b * 16u + ix56];
  }
  // broadcast [59] -> [1, 2, 2, 1]
  for (var e = 0u; e < 4u + P.zero; e++) {
    let ix60 = 0u;
    A[VB + 166u * P.batch + b * 4u + e] = C[10u + ix60];
  }
  // concat axis=3 [58, 60] -> [1, 2, 2, 2]
  for (var e = 0u; e < 8u + P.zero; e++) {
    let c0 = (e / 8u) % 1u;
    let c1 = (e / 4u) % 2u;
    let c2 = (e / 2u) % 2u;
    let c3 = (e / 1u) % 2u;
    var v = 0.0;
    if (c3 < 1u) { v = A[VB + 162u * P.batch + b * 4u + (c0 * 4u + c1 * 2u + c2 * 1u + (c3 - 0u) * 1u)]; }
    else if (c3 < 2u) { v = A[VB + 166u * P.batch + b * 4u + (c0 * 4u + c1 * 2u + c2 * 1u + (c3 - 1u) * 1u)]; }
    A[VB + 170u * P.batch + b * 8u + e] = v;
  }
  // broadcast [59] -> [1, 2, 1]
  for (var e = 0u; e < 2u + P.zero; e++) {
    let ix63 = 0u;
    A[VB + 178u * P.batch + b * 2u + e] = C[10u + ix63];
  }
  // concat axis=2 [63, 62] -> [1, 2, 5]
  for (var e = 0u; e < 10u + P.zero; e++) {
    let c0 = (e / 10u) % 1u;
    let c1 = (e / 5u) % 2u;
    let c2 = (e / 1u) % 5u;
    var v = 0.0;
    if (c2 < 1u) { v = A[VB + 178u * P.batch + b * 2u + (c0 * 2u + c1 * 1u + (c2 - 0u) * 1u)]; }
    else if (c2 < 5u) { v = A[VB + 170u * P.batch + b * 8u + (c0 * 8u + c1 * 4u + (c2 - 1u) * 1u)]; }
    A[VB + 180u * P.batch + b * 10u + e] = v;
  }
  // reshape [55] -> [1, 2, 2, 1]
  for (var e = 0u; e < 4u + P.zero; e++) {
    let ix55 = (((e) / 4u) % 1u * 16u + (2u + ((e) / 4u) % 1u * 1u) * 4u + ((e) / 1u) % 4u * 1u);
    A[VB + 190u * P.batch + b * 4u + e] = A[VB + 146u * P.batch + b * 16u + ix55];
  }
  // concat axis=3 [66, 60] -> [1, 2, 2, 2]
  for (var e = 0u; e < 8u + P.zero; e++) {
    let c0 = (e / 8u) % 1u;
    let c1 = (e / 4u) % 2u;
    let c2 = (e / 2u) % 2u;
    let c3 = (e / 1u) % 2u;
    var v = 0.0;
    if (c3 < 1u) { v = A[VB + 190u * P.batch + b * 4u + (c0 * 4u + c1 * 2u + c2 * 1u + (c3 - 0u) * 1u)]; }
    else if (c3 < 2u) { v = A[VB + 166u * P.batch + b * 4u + (c0 * 4u + c1 * 2u + c2 * 1u + (c3 - 1u) * 1u)]; }
    A[VB + 194u * P.batch + b * 8u + e] = v;
  }
  // concat axis=2 [68, 63] -> [1, 2, 5]
  for (var e = 0u; e < 10u + P.zero; e++) {
    let c0 = (e / 10u) % 1u;
    let c1 = (e / 5u) % 2u;
    let c2 = (e / 1u) % 5u;
    var v = 0.0;
    if (c2 < 4u) { v = A[VB + 194u * P.batch + b * 8u + (c0 * 8u + c1 * 4u + (c2 - 0u) * 1u)]; }
    else if (c2 < 5u) { v = A[VB + 178u * P.batch + b * 2u + (c0 * 2u + c1 * 1u + (c2 - 4u) * 1u)]; }
    A[VB + 202u * P.batch + b * 10u + e] = v;
  }
  // reshape [70] -> [1, 2, 1, 5]
  for (var e = 0u; e < 10u + P.zero; e++) {
    A[VB + 212u * P.batch + b * 10u + e] = (A[VB + 180u * P.batch + b * 10u + e] + opaque(A[VB + 202u * P.batch + b * 10u + e]));
  }
  // broadcast [59] -> [1, 2, 1, 5]
  for (var e = 0u; e < 10u + P.zero; e++) {
    let ix72 = 0u;
    A[VB + 222u * P.batch + b * 10u + e] = C[10u + ix72];
  }
  // concat axis=2 [71, 72] -> [1, 2, 2, 5]
  for (var e = 0u; e < 20u + P.zero; e++) {
    let c0 = (e / 20u) % 1u;
    let c1 = (e / 10u) % 2u;
    let c2 = (e / 5u) % 2u;
    let c3 = (e / 1u) % 5u;
    var v = 0.0;
    if (c2 < 1u) { v = A[VB + 212u * P.batch + b * 10u + (c0 * 10u + c1 * 5u + (c2 - 0u) * 5u + c3 * 1u)]; }
    else if (c2 < 2u) { v = A[VB + 222u * P.batch + b * 10u + (c0 * 10u + c1 * 5u + (c2 - 1u) * 5u + c3 * 1u)]; }
    A[VB + 232u * P.batch + b * 20u + e] = v;
  }
  // broadcast [59] -> [1, 1, 5]
  for (var e = 0u; e < 5u + P.zero; e++) {
    let ix75 = 0u;
    A[VB + 252u * P.batch + b * 5u + e] = C[10u + ix75];
  }
  // concat axis=1 [75, 74] -> [1, 5, 5]
  for (var e = 0u; e < 25u + P.zero; e++) {
    let c0 = (e / 25u) % 1u;
    let c1 = (e / 5u) % 5u;
    let c2 = (e / 1u) % 5u;
    var v = 0.0;
    if (c1 < 1u) { v = A[VB + 252u * P.batch + b * 5u + (c0 * 5u + (c1 - 0u) * 5u + c2 * 1u)]; }
    else if (c1 < 5u) { v = A[VB + 232u * P.batch + b * 20u + (c0 * 20u + (c1 - 1u) * 5u + c2 * 1u)]; }
    A[VB + 257u * P.batch + b * 25u + e] = v;
  }
  // reshape [54] -> [1, 2, 2, 1]
  for (var e = 0u; e < 4u + P.zero; e++) {
    let ix54 = (((e) / 4u) % 1u * 16u + (1u + ((e) / 4u) % 1u * 1u) * 4u + ((e) / 1u) % 4u * 1u);
    A[VB + 282u * P.batch + b * 4u + e] = A[VB + 146u * P.batch + b * 16u + ix54];
  }
  // concat axis=3 [78, 60] -> [1, 2, 2, 2]
  for (var e = 0u; e < 8u + P.zero; e++) {
    let c0 = (e / 8u) % 1u;
    let c1 = (e / 4u) % 2u;
    let c2 = (e / 2u) % 2u;
    let c3 = (e / 1u) % 2u;
    var v = 0.0;
    if (c3 < 1u) { v = A[VB + 282u * P.batch + b * 4u + (c0 * 4u + c1 * 2u + c2 * 1u + (c3 - 0u) * 1u)]; }
    else if (c3 < 2u) { v = A[VB + 166u * P.batch + b * 4u + (c0 * 4u + c1 * 2u + c2 * 1u + (c3 - 1u) * 1u)]; }
    A[VB + 286u * P.batch + b * 8u + e] = v;
  }
  // concat axis=2 [63, 80] -> [1, 2, 5]
  for (var e = 0u; e < 10u + P.zero; e++) {
    let c0 = (e / 10u) % 1u;
    let c1 = (e / 5u) % 2u;
    let c2 = (e / 1u) % 5u;
    var v = 0.0;
    if (c2 < 1u) { v = A[VB + 178u * P.batch + b * 2u + (c0 * 2u + c1 * 1u + (c2 - 0u) * 1u)]; }
    else if (c2 < 5u) { v = A[VB + 286u * P.batch + b * 8u + (c0 * 8u + c1 * 4u + (c2 - 1u) * 1u)]; }
    A[VB + 294u * P.batch + b * 10u + e] = v;
  }
  // reshape [53] -> [1, 2, 2, 1]
  for (var e = 0u; e < 4u + P.zero; e++) {
    let ix53 = (((e) / 4u) % 1u * 16u + (0u + ((e) / 4u) % 1u * 1u) * 4u + ((e) / 1u) % 4u * 1u);
    A[VB + 304u * P.batch + b * 4u + e] = A[VB + 146u * P.batch + b * 16u + ix53];
  }
  // concat axis=3 [83, 60] -> [1, 2, 2, 2]
  for (var e = 0u; e < 8u + P.zero; e++) {
    let c0 = (e / 8u) % 1u;
    let c1 = (e / 4u) % 2u;
    let c2 = (e / 2u) % 2u;
    let c3 = (e / 1u) % 2u;
    var v = 0.0;
    if (c3 < 1u) { v = A[VB + 304u * P.batch + b * 4u + (c0 * 4u + c1 * 2u + c2 * 1u + (c3 - 0u) * 1u)]; }
    else if (c3 < 2u) { v = A[VB + 166u * P.batch + b * 4u + (c0 * 4u + c1 * 2u + c2 * 1u + (c3 - 1u) * 1u)]; }
    A[VB + 308u * P.batch + b * 8u + e] = v;
  }
  // concat axis=2 [85, 63] -> [1, 2, 5]
  for (var e = 0u; e < 10u + P.zero; e++) {
    let c0 = (e / 10u) % 1u;
    let c1 = (e / 5u) % 2u;
    let c2 = (e / 1u) % 5u;
    var v = 0.0;
    if (c2 < 4u) { v = A[VB + 308u * P.batch + b * 8u + (c0 * 8u + c1 * 4u + (c2 - 0u) * 1u)]; }
    else if (c2 < 5u) { v = A[VB + 178u * P.batch + b * 2u + (c0 * 2u + c1 * 1u + (c2 - 4u) * 1u)]; }
    A[VB + 316u * P.batch + b * 10u + e] = v;
  }
  // reshape [87] -> [1, 2, 1, 5]
  for (var e = 0u; e < 10u + P.zero; e++) {
    A[VB + 326u * P.batch + b * 10u + e] = (A[VB + 294u * P.batch + b * 10u + e] + opaque(A[VB + 316u * P.batch + b * 10u + e]));
  }
  // concat axis=2 [88, 72] -> [1, 2, 2, 5]
  for (var e = 0u; e < 20u + P.zero; e++) {
    let c0 = (e / 20u) % 1u;
    let c1 = (e / 10u) % 2u;
    let c2 = (e / 5u) % 2u;
    let c3 = (e / 1u) % 5u;
    var v = 0.0;
    if (c2 < 1u) { v = A[VB + 326u * P.batch + b * 10u + (c0 * 10u + c1 * 5u + (c2 - 0u) * 5u + c3 * 1u)]; }
    else if (c2 < 2u) { v = A[VB + 222u * P.batch + b * 10u + (c0 * 10u + c1 * 5u + (c2 - 1u) * 5u + c3 * 1u)]; }
    A[VB + 336u * P.batch + b * 20u + e] = v;
  }
  // concat axis=1 [90, 75] -> [1, 5, 5]
  for (var e = 0u; e < 25u + P.zero; e++) {
    let c0 = (e / 25u) % 1u;
    let c1 = (e / 5u) % 5u;
    let c2 = (e / 1u) % 5u;
    var v = 0.0;
    if (c1 < 4u) { v = A[VB + 336u * P.batch + b * 20u + (c0 * 20u + (c1 - 0u) * 5u + c2 * 1u)]; }
    else if (c1 < 5u) { v = A[VB + 252u * P.batch + b * 5u + (c0 * 5u + (c1 - 4u) * 5u + c2 * 1u)]; }
    A[VB + 356u * P.batch + b * 25u + e] = v;
  }
  // slice axis=1 start=0 [93] -> [1, 4, 4]
  for (var e = 0u; e < 16u + P.zero; e++) {
    let ix94 = (((e) / 16u) % 1u * 20u + (0u + ((e) / 4u) % 4u * 1u) * 4u + ((e) / 1u) % 4u * 1u);
    let ix93 = (((ix94) / 20u) % 1u * 25u + ((ix94) / 4u) % 5u * 5u + (0u + ((ix94) / 1u) % 4u * 1u) * 1u);
    A[VB + 381u * P.batch + b * 16u + e] = (A[VB + 257u * P.batch + b * 25u + ix93] + opaque(A[VB + 356u * P.batch + b * 25u + ix93]));
  }
}

@compute @workgroup_size(64)
fn all(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch) { return; }
  all_of(i);
}

