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

// e: 1 passes; invariant region 1 values, 65 values per sample

const VB: u32 = 1u;

// the whole graph: one invocation per sample computes every value
fn all_of(b: u32) {
  // tanh [2] -> []
  for (var e = 0u; e < 1u; e++) {
    let ix1 = ((0u + ((e) / 1u) % 1u * 1u) * 1u);
    A[VB + 2u * P.batch + b * 1u + e] = tanh_s(A[VB + 0u * P.batch + b * 2u + ix1]);
  }
  {
    for (var e = 0u; e < 1u; e++) {
      A[VB + 6u * P.batch + b * 1u + e] = C[3u + e];
    }
    for (var e = 0u; e < 1u; e++) {
      A[VB + 8u * P.batch + b * 1u + e] = A[0u + e];
    }
    for (var e = 0u; e < 1u; e++) {
      A[VB + 9u * P.batch + b * 1u + e] = A[VB + 2u * P.batch + b * 1u + e];
    }
    for (var u1 = 0u; u1 < 3u + P.zero; u1++) {
      let t1 = u1;
      for (var e = 0u; e < 1u; e++) {
        A[VB + 7u * P.batch + b * 1u + e] = C[0u + t1 * 1u + e];
      }
      // sub [3, 5] -> []
      for (var e = 0u; e < 1u; e++) {
        A[VB + 10u * P.batch + b * 1u + e] = ((A[VB + 7u * P.batch + b * 1u + e] - opaque(A[VB + 8u * P.batch + b * 1u + e])) - opaque((A[VB + 9u * P.batch + b * 1u + e] * A[VB + 6u * P.batch + b * 1u + e])));
      }
      for (var e = 0u; e < 1u; e++) {
        let v = A[VB + 10u * P.batch + b * 1u + e];
        A[VB + 3u * P.batch + b * 3u + t1 * 1u + e] = v;
        A[VB + 6u * P.batch + b * 1u + e] = v;
      }
    }
  }
  // powc 2 [7] -> [3]
  for (var e = 0u; e < 3u + P.zero; e++) {
    A[VB + 11u * P.batch + b * 3u + e] = sq(A[VB + 3u * P.batch + b * 3u + e]);
  }
  // sum[0] [9] -> []
  for (var e = 0u; e < 1u; e++) {
    var acc = 0.0;
    for (var r0 = 0u; r0 < 3u + P.zero; r0++) {
      acc = acc + A[VB + 11u * P.batch + b * 3u + (r0 * 1u)];
    }
    A[VB + 14u * P.batch + b * 1u + e] = acc;
  }
  // reshape [13] -> []
  for (var e = 0u; e < 1u; e++) {
    let ix13 = ((1u + ((e) / 1u) % 1u * 1u) * 1u);
    A[VB + 15u * P.batch + b * 1u + e] = A[VB + 0u * P.batch + b * 2u + ix13];
  }
  // exp [15] -> []
  for (var e = 0u; e < 1u; e++) {
    A[VB + 16u * P.batch + b * 1u + e] = exp_s((C[5u + e] * A[VB + 15u * P.batch + b * 1u + e]));
  }
  // mul [11, 16] -> []
  for (var e = 0u; e < 1u; e++) {
    A[VB + 17u * P.batch + b * 1u + e] = ((C[4u + e] * A[VB + 14u * P.batch + b * 1u + e]) * A[VB + 16u * P.batch + b * 1u + e]);
  }
  // add [17, 19] -> []
  for (var e = 0u; e < 1u; e++) {
    A[VB + 18u * P.batch + b * 1u + e] = (A[VB + 17u * P.batch + b * 1u + e] + opaque((C[6u + e] * A[VB + 15u * P.batch + b * 1u + e])));
  }
  // reshape [23] -> [1]
  for (var e = 0u; e < 1u; e++) {
    A[VB + 19u * P.batch + b * 1u + e] = (C[6u + e] + opaque((A[VB + 17u * P.batch + b * 1u + e] * C[5u + e])));
  }
  // broadcast [4] -> [1]
  for (var e = 0u; e < 1u; e++) {
    let ix25 = 0u;
    A[VB + 20u * P.batch + b * 1u + e] = C[3u + ix25];
  }
  // concat axis=0 [25, 24] -> [2]
  for (var e = 0u; e < 2u + P.zero; e++) {
    let c0 = (e / 1u) % 2u;
    var v = 0.0;
    if (c0 < 1u) { v = A[VB + 20u * P.batch + b * 1u + ((c0 - 0u) * 1u)]; }
    else if (c0 < 2u) { v = A[VB + 19u * P.batch + b * 1u + ((c0 - 1u) * 1u)]; }
    A[VB + 21u * P.batch + b * 2u + e] = v;
  }
  // mul [27, 30] -> []
  for (var e = 0u; e < 1u; e++) {
    A[VB + 23u * P.batch + b * 1u + e] = ((A[VB + 16u * P.batch + b * 1u + e] * C[4u + e]) * C[8u + e]);
  }
  // mul [33, 7] -> [3]
  for (var e = 0u; e < 3u + P.zero; e++) {
    let ix33 = 0u;
    A[VB + 24u * P.batch + b * 3u + e] = (A[VB + 23u * P.batch + b * 1u + ix33] * A[VB + 3u * P.batch + b * 3u + e]);
  }
  // slice axis=0 start=0 [7] -> [2]
  for (var e = 0u; e < 2u + P.zero; e++) {
    let ix35 = ((0u + ((e) / 1u) % 2u * 1u) * 1u);
    A[VB + 27u * P.batch + b * 2u + e] = A[VB + 3u * P.batch + b * 3u + ix35];
  }
  // concat axis=0 [25, 35] -> [3]
  for (var e = 0u; e < 3u + P.zero; e++) {
    let c0 = (e / 1u) % 3u;
    var v = 0.0;
    if (c0 < 1u) { v = A[VB + 20u * P.batch + b * 1u + ((c0 - 0u) * 1u)]; }
    else if (c0 < 3u) { v = A[VB + 27u * P.batch + b * 2u + ((c0 - 1u) * 1u)]; }
    A[VB + 29u * P.batch + b * 3u + e] = v;
  }
  // broadcast [4] -> [3]
  for (var e = 0u; e < 3u + P.zero; e++) {
    let ix37 = 0u;
    A[VB + 32u * P.batch + b * 3u + e] = C[3u + ix37];
  }
  {
    for (var e = 0u; e < 3u + P.zero; e++) {
      A[VB + 44u * P.batch + b * 3u + e] = A[VB + 32u * P.batch + b * 3u + e];
    }
    for (var e = 0u; e < 1u; e++) {
      A[VB + 49u * P.batch + b * 1u + e] = A[VB + 2u * P.batch + b * 1u + e];
    }
    for (var u1 = 0u; u1 < 3u + P.zero; u1++) {
      let t1 = 2u - u1;
      for (var e = 0u; e < 1u; e++) {
        A[VB + 47u * P.batch + b * 1u + e] = A[VB + 24u * P.batch + b * 3u + t1 * 1u + e];
      }
      for (var e = 0u; e < 1u; e++) {
        A[VB + 48u * P.batch + b * 1u + e] = A[VB + 29u * P.batch + b * 3u + t1 * 1u + e];
      }
      // neg [6] -> []
      for (var e = 0u; e < 1u; e++) {
        let ix4 = ((0u + ((e) / 1u) % 1u * 1u) * 1u);
        A[VB + 50u * P.batch + b * 1u + e] = (-(A[VB + 47u * P.batch + b * 1u + e] + opaque(A[VB + 44u * P.batch + b * 3u + ix4])));
      }
      // reshape [9] -> [1]
      for (var e = 0u; e < 1u; e++) {
        A[VB + 51u * P.batch + b * 1u + e] = (A[VB + 50u * P.batch + b * 1u + e] * A[VB + 49u * P.batch + b * 1u + e]);
      }
      // reshape [8] -> [1]
      for (var e = 0u; e < 1u; e++) {
        A[VB + 52u * P.batch + b * 1u + e] = (A[VB + 50u * P.batch + b * 1u + e] * A[VB + 48u * P.batch + b * 1u + e]);
      }
      // concat axis=0 [10, 11, 12] -> [3]
      for (var e = 0u; e < 3u + P.zero; e++) {
        let c0 = (e / 1u) % 3u;
        var v = 0.0;
        if (c0 < 1u) { v = A[VB + 51u * P.batch + b * 1u + ((c0 - 0u) * 1u)]; }
        else if (c0 < 2u) { v = A[VB + 50u * P.batch + b * 1u + ((c0 - 1u) * 1u)]; }
        else if (c0 < 3u) { v = A[VB + 52u * P.batch + b * 1u + ((c0 - 2u) * 1u)]; }
        A[VB + 53u * P.batch + b * 3u + e] = v;
      }
      for (var e = 0u; e < 3u + P.zero; e++) {
        let v = A[VB + 53u * P.batch + b * 3u + e];
        A[VB + 35u * P.batch + b * 9u + t1 * 3u + e] = v;
        A[VB + 44u * P.batch + b * 3u + e] = v;
      }
    }
  }
  // slice axis=1 start=2 [38] -> [3, 1]
  for (var e = 0u; e < 3u + P.zero; e++) {
    let ix39 = (((e) / 1u) % 3u * 3u + (2u + ((e) / 1u) % 1u * 1u) * 1u);
    A[VB + 56u * P.batch + b * 3u + e] = A[VB + 35u * P.batch + b * 9u + ix39];
  }
  // sum[0] [39] -> [1]
  for (var e = 0u; e < 1u; e++) {
    let k0 = (e / 1u) % 1u;
    var acc = 0.0;
    for (var r0 = 0u; r0 < 3u + P.zero; r0++) {
      acc = acc + A[VB + 56u * P.batch + b * 3u + (r0 * 1u + k0 * 1u)];
    }
    A[VB + 59u * P.batch + b * 1u + e] = acc;
  }
  // reshape [44] -> [1]
  for (var e = 0u; e < 1u; e++) {
    A[VB + 60u * P.batch + b * 1u + e] = (A[VB + 59u * P.batch + b * 1u + e] * (C[7u + e] - opaque((A[VB + 2u * P.batch + b * 1u + e] * A[VB + 2u * P.batch + b * 1u + e]))));
  }
  // concat axis=0 [45, 25] -> [2]
  for (var e = 0u; e < 2u + P.zero; e++) {
    let c0 = (e / 1u) % 2u;
    var v = 0.0;
    if (c0 < 1u) { v = A[VB + 60u * P.batch + b * 1u + ((c0 - 0u) * 1u)]; }
    else if (c0 < 2u) { v = A[VB + 20u * P.batch + b * 1u + ((c0 - 1u) * 1u)]; }
    A[VB + 61u * P.batch + b * 2u + e] = v;
  }
  // add [26, 46] -> [2]
  for (var e = 0u; e < 2u + P.zero; e++) {
    A[VB + 63u * P.batch + b * 2u + e] = (A[VB + 21u * P.batch + b * 2u + e] + opaque(A[VB + 61u * P.batch + b * 2u + e]));
  }
}

@compute @workgroup_size(64)
fn all(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch) { return; }
  all_of(i);
}

