// gmm: 25 passes; invariant region 24 values, 186 values per sample

struct Params { batch: u32, first: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<storage, read_write> A: array<f32>;
@group(0) @binding(1) var<storage, read> C: array<f32>;
@group(0) @binding(2) var<uniform> P: Params;

fn is_nan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn inf() -> f32 { return bitcast<f32>(0x7f800000u); }
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

const VB: u32 = 24u;

// broadcast [0] -> [8, 2]
@compute @workgroup_size(64)
fn n2(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch * 16u) { return; }
  let b = i / 16u;
  let e = i % 16u;
  let c0 = (e / 2u) % 8u;
  let c1 = (e / 1u) % 2u;
  A[VB + 2u * P.batch + b * 16u + e] = A[VB + 0u * P.batch + b * 2u + (c1 * 1u)];
}

// sub [2, 1] -> [8, 2]
@compute @workgroup_size(64)
fn n3(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch * 16u) { return; }
  let b = i / 16u;
  let e = i % 16u;
  A[VB + 18u * P.batch + b * 16u + e] = A[VB + 2u * P.batch + b * 16u + e] - C[0u + e];
}

// powc 2 [3] -> [8, 2]
@compute @workgroup_size(64)
fn n4(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch * 16u) { return; }
  let b = i / 16u;
  let e = i % 16u;
  let x = A[VB + 18u * P.batch + b * 16u + e];
  A[VB + 34u * P.batch + b * 16u + e] = x * x;
}

// sum[1] [4] -> [8]
@compute @workgroup_size(64)
fn n5(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch * 8u) { return; }
  let b = i / 8u;
  let e = i % 8u;
  let k0 = (e / 1u) % 8u;
  var acc = 0.0;
  for (var r1 = 0u; r1 < 2u; r1++) {
    acc = acc + A[VB + 34u * P.batch + b * 16u + (k0 * 2u + r1 * 1u)];
  }
  A[VB + 50u * P.batch + b * 8u + e] = acc;
}

// neg [5] -> [8]
@compute @workgroup_size(64)
fn n6(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch * 8u) { return; }
  let b = i / 8u;
  let e = i % 8u;
  A[VB + 58u * P.batch + b * 8u + e] = -(A[VB + 50u * P.batch + b * 8u + e]);
}

// broadcast [7] -> [8]
@compute @workgroup_size(64)
fn n8(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= 8u) { return; }
  let b = 0u;
  let e = i;
  let c0 = (e / 1u) % 8u;
  A[0u + e] = C[16u + 0u];
}

// div [6, 8] -> [8]
@compute @workgroup_size(64)
fn n9(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch * 8u) { return; }
  let b = i / 8u;
  let e = i % 8u;
  A[VB + 66u * P.batch + b * 8u + e] = A[VB + 58u * P.batch + b * 8u + e] / A[0u + e];
}

// max[0] [9] -> []
@compute @workgroup_size(64)
fn n10(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch * 1u) { return; }
  let b = i / 1u;
  let e = i % 1u;
  var acc = bitcast<f32>(0xff800000u);
  for (var r0 = 0u; r0 < 8u; r0++) {
    acc = max_number(acc, A[VB + 66u * P.batch + b * 8u + (r0 * 1u)]);
  }
  A[VB + 74u * P.batch + b * 1u + e] = acc;
}

// broadcast [11] -> [8]
@compute @workgroup_size(64)
fn n13(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch * 8u) { return; }
  let b = i / 8u;
  let e = i % 8u;
  let c0 = (e / 1u) % 8u;
  A[VB + 75u * P.batch + b * 8u + e] = A[VB + 74u * P.batch + b * 1u + 0u];
}

// sub [9, 13] -> [8]
@compute @workgroup_size(64)
fn n14(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch * 8u) { return; }
  let b = i / 8u;
  let e = i % 8u;
  A[VB + 83u * P.batch + b * 8u + e] = A[VB + 66u * P.batch + b * 8u + e] - A[VB + 75u * P.batch + b * 8u + e];
}

// exp [14] -> [8]
@compute @workgroup_size(64)
fn n15(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch * 8u) { return; }
  let b = i / 8u;
  let e = i % 8u;
  A[VB + 91u * P.batch + b * 8u + e] = exp_s(A[VB + 83u * P.batch + b * 8u + e]);
}

// sum[0] [15] -> []
@compute @workgroup_size(64)
fn n16(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch * 1u) { return; }
  let b = i / 1u;
  let e = i % 1u;
  var acc = 0.0;
  for (var r0 = 0u; r0 < 8u; r0++) {
    acc = acc + A[VB + 91u * P.batch + b * 8u + (r0 * 1u)];
  }
  A[VB + 99u * P.batch + b * 1u + e] = acc;
}

// log [16] -> []
@compute @workgroup_size(64)
fn n17(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch * 1u) { return; }
  let b = i / 1u;
  let e = i % 1u;
  A[VB + 100u * P.batch + b * 1u + e] = log_s(A[VB + 99u * P.batch + b * 1u + e]);
}

// add [11, 17] -> []
@compute @workgroup_size(64)
fn n18(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch * 1u) { return; }
  let b = i / 1u;
  let e = i % 1u;
  A[VB + 101u * P.batch + b * 1u + e] = A[VB + 74u * P.batch + b * 1u + e] + A[VB + 100u * P.batch + b * 1u + e];
}

// neg [18] -> []
@compute @workgroup_size(64)
fn n19(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch * 1u) { return; }
  let b = i / 1u;
  let e = i % 1u;
  A[VB + 102u * P.batch + b * 1u + e] = -(A[VB + 101u * P.batch + b * 1u + e]);
}

// div [21, 16] -> []
@compute @workgroup_size(64)
fn n22(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch * 1u) { return; }
  let b = i / 1u;
  let e = i % 1u;
  A[VB + 103u * P.batch + b * 1u + e] = C[17u + e] / A[VB + 99u * P.batch + b * 1u + e];
}

// broadcast [22] -> [8]
@compute @workgroup_size(64)
fn n24(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch * 8u) { return; }
  let b = i / 8u;
  let e = i % 8u;
  let c0 = (e / 1u) % 8u;
  A[VB + 104u * P.batch + b * 8u + e] = A[VB + 103u * P.batch + b * 1u + 0u];
}

// mul [24, 15] -> [8]
@compute @workgroup_size(64)
fn n25(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch * 8u) { return; }
  let b = i / 8u;
  let e = i % 8u;
  A[VB + 112u * P.batch + b * 8u + e] = A[VB + 104u * P.batch + b * 8u + e] * A[VB + 91u * P.batch + b * 8u + e];
}

// div [25, 8] -> [8]
@compute @workgroup_size(64)
fn n26(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch * 8u) { return; }
  let b = i / 8u;
  let e = i % 8u;
  A[VB + 120u * P.batch + b * 8u + e] = A[VB + 112u * P.batch + b * 8u + e] / A[0u + e];
}

// neg [26] -> [8]
@compute @workgroup_size(64)
fn n27(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch * 8u) { return; }
  let b = i / 8u;
  let e = i % 8u;
  A[VB + 128u * P.batch + b * 8u + e] = -(A[VB + 120u * P.batch + b * 8u + e]);
}

// broadcast [28] -> [8, 2]
@compute @workgroup_size(64)
fn n29(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch * 16u) { return; }
  let b = i / 16u;
  let e = i % 16u;
  let c0 = (e / 2u) % 8u;
  let c1 = (e / 1u) % 2u;
  A[VB + 136u * P.batch + b * 16u + e] = A[VB + 128u * P.batch + b * 8u + (c0 * 1u)];
}

// broadcast [30] -> [8, 2]
@compute @workgroup_size(64)
fn n31(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= 16u) { return; }
  let b = 0u;
  let e = i;
  let c0 = (e / 2u) % 8u;
  let c1 = (e / 1u) % 2u;
  A[8u + e] = C[18u + 0u];
}

// mul [29, 31] -> [8, 2]
@compute @workgroup_size(64)
fn n32(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch * 16u) { return; }
  let b = i / 16u;
  let e = i % 16u;
  A[VB + 152u * P.batch + b * 16u + e] = A[VB + 136u * P.batch + b * 16u + e] * A[8u + e];
}

// mul [32, 3] -> [8, 2]
@compute @workgroup_size(64)
fn n33(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch * 16u) { return; }
  let b = i / 16u;
  let e = i % 16u;
  A[VB + 168u * P.batch + b * 16u + e] = A[VB + 152u * P.batch + b * 16u + e] * A[VB + 18u * P.batch + b * 16u + e];
}

// sum[0] [33] -> [2]
@compute @workgroup_size(64)
fn n34(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch * 2u) { return; }
  let b = i / 2u;
  let e = i % 2u;
  let k0 = (e / 1u) % 2u;
  var acc = 0.0;
  for (var r0 = 0u; r0 < 8u; r0++) {
    acc = acc + A[VB + 168u * P.batch + b * 16u + (r0 * 2u + k0 * 1u)];
  }
  A[VB + 184u * P.batch + b * 2u + e] = acc;
}

