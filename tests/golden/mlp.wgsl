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

// net: 9 passes; invariant region 17153 values, 1415 values per sample

const VB: u32 = 17153u;

var<workgroup> TA: array<f32, 1024>;
var<workgroup> TB: array<f32, 1024>;

// of constants only: a step loop runs this at its first step
// broadcast [18] -> [128]
@compute @workgroup_size(64)
fn n21(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= 128u) { return; }
  let b = 0u;
  let e = i;
  let ix21 = 0u;
  A[17025u + e] = C[0u + ix21];
}

// matmul [0, 1] -> [128]
// add [2, 3] -> [128]
// sigmoid [4] -> [128]
// mul [4, 5] -> [128]
@compute @workgroup_size(64)
fn n2_n6(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch * 128u) { return; }
  let b = i / 128u;
  let e = i % 128u;
  {
    let row = e / 128u;
    let col = e % 128u;
    var acc = 0.0;
    for (var p = 0u; p < 2u; p++) {
      let prod = A[VB + 0u * P.batch + b * 2u + row * 2u + p] * A[0u + p * 128u + col];
      acc = acc + prod;
    }
    A[VB + 2u * P.batch + b * 128u + e] = acc;
  }
  {
    A[VB + 130u * P.batch + b * 128u + e] = (A[VB + 2u * P.batch + b * 128u + e] + opaque(A[256u + e]));
  }
  {
    A[VB + 258u * P.batch + b * 128u + e] = sigmoid_s(A[VB + 130u * P.batch + b * 128u + e]);
  }
  {
    A[VB + 386u * P.batch + b * 128u + e] = (A[VB + 130u * P.batch + b * 128u + e] * A[VB + 258u * P.batch + b * 128u + e]);
  }
}

// matmul [6, 7] -> [128], tiled: 64×64 values per workgroup
@compute @workgroup_size(256)
fn n8(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let rows = P.batch * 1u;
  let t = wg.x + wg.y * 65535u;
  let r0 = (t / 2u) * 64u;
  let c0 = (t % 2u) * 64u;
  if (r0 >= rows) { return; }
  let ab = VB + 386u * P.batch;
  let tx = li % 16u;
  let ty = li / 16u;
  var acc00 = 0.0;
  var acc01 = 0.0;
  var acc02 = 0.0;
  var acc03 = 0.0;
  var acc10 = 0.0;
  var acc11 = 0.0;
  var acc12 = 0.0;
  var acc13 = 0.0;
  var acc20 = 0.0;
  var acc21 = 0.0;
  var acc22 = 0.0;
  var acc23 = 0.0;
  var acc30 = 0.0;
  var acc31 = 0.0;
  var acc32 = 0.0;
  var acc33 = 0.0;
  for (var p0 = 0u; p0 < 128u; p0 += 16u) {
    for (var q = 0u; q < 4u; q++) {
      let l = li + q * 256u;
      let r = r0 + l / 16u;
      let pa = p0 + l % 16u;
      var va = 0.0;
      if (r < rows && pa < 128u) { va = A[ab + r * 128u + pa]; }
      TA[l] = va;
      let pb = p0 + l / 64u;
      let c = c0 + l % 64u;
      var vb = 0.0;
      if (pb < 128u && c < 128u) { vb = A[384u + pb * 128u + c]; }
      TB[l] = vb;
    }
    workgroupBarrier();
    let kt = min(16u, 128u - p0);
    for (var p = 0u; p < kt; p++) {
      let y0 = TB[p * 64u + tx + 0u];
      let y1 = TB[p * 64u + tx + 16u];
      let y2 = TB[p * 64u + tx + 32u];
      let y3 = TB[p * 64u + tx + 48u];
      let x0 = TA[(ty + 0u) * 16u + p];
      let p00 = x0 * y0;
      acc00 = acc00 + p00;
      let p01 = x0 * y1;
      acc01 = acc01 + p01;
      let p02 = x0 * y2;
      acc02 = acc02 + p02;
      let p03 = x0 * y3;
      acc03 = acc03 + p03;
      let x1 = TA[(ty + 16u) * 16u + p];
      let p10 = x1 * y0;
      acc10 = acc10 + p10;
      let p11 = x1 * y1;
      acc11 = acc11 + p11;
      let p12 = x1 * y2;
      acc12 = acc12 + p12;
      let p13 = x1 * y3;
      acc13 = acc13 + p13;
      let x2 = TA[(ty + 32u) * 16u + p];
      let p20 = x2 * y0;
      acc20 = acc20 + p20;
      let p21 = x2 * y1;
      acc21 = acc21 + p21;
      let p22 = x2 * y2;
      acc22 = acc22 + p22;
      let p23 = x2 * y3;
      acc23 = acc23 + p23;
      let x3 = TA[(ty + 48u) * 16u + p];
      let p30 = x3 * y0;
      acc30 = acc30 + p30;
      let p31 = x3 * y1;
      acc31 = acc31 + p31;
      let p32 = x3 * y2;
      acc32 = acc32 + p32;
      let p33 = x3 * y3;
      acc33 = acc33 + p33;
    }
    workgroupBarrier();
  }
  let ob = VB + 514u * P.batch;
  let row0 = r0 + ty + 0u;
  if (row0 < rows && c0 + tx + 0u < 128u) { A[ob + row0 * 128u + c0 + tx + 0u] = acc00; }
  if (row0 < rows && c0 + tx + 16u < 128u) { A[ob + row0 * 128u + c0 + tx + 16u] = acc01; }
  if (row0 < rows && c0 + tx + 32u < 128u) { A[ob + row0 * 128u + c0 + tx + 32u] = acc02; }
  if (row0 < rows && c0 + tx + 48u < 128u) { A[ob + row0 * 128u + c0 + tx + 48u] = acc03; }
  let row1 = r0 + ty + 16u;
  if (row1 < rows && c0 + tx + 0u < 128u) { A[ob + row1 * 128u + c0 + tx + 0u] = acc10; }
  if (row1 < rows && c0 + tx + 16u < 128u) { A[ob + row1 * 128u + c0 + tx + 16u] = acc11; }
  if (row1 < rows && c0 + tx + 32u < 128u) { A[ob + row1 * 128u + c0 + tx + 32u] = acc12; }
  if (row1 < rows && c0 + tx + 48u < 128u) { A[ob + row1 * 128u + c0 + tx + 48u] = acc13; }
  let row2 = r0 + ty + 32u;
  if (row2 < rows && c0 + tx + 0u < 128u) { A[ob + row2 * 128u + c0 + tx + 0u] = acc20; }
  if (row2 < rows && c0 + tx + 16u < 128u) { A[ob + row2 * 128u + c0 + tx + 16u] = acc21; }
  if (row2 < rows && c0 + tx + 32u < 128u) { A[ob + row2 * 128u + c0 + tx + 32u] = acc22; }
  if (row2 < rows && c0 + tx + 48u < 128u) { A[ob + row2 * 128u + c0 + tx + 48u] = acc23; }
  let row3 = r0 + ty + 48u;
  if (row3 < rows && c0 + tx + 0u < 128u) { A[ob + row3 * 128u + c0 + tx + 0u] = acc30; }
  if (row3 < rows && c0 + tx + 16u < 128u) { A[ob + row3 * 128u + c0 + tx + 16u] = acc31; }
  if (row3 < rows && c0 + tx + 32u < 128u) { A[ob + row3 * 128u + c0 + tx + 32u] = acc32; }
  if (row3 < rows && c0 + tx + 48u < 128u) { A[ob + row3 * 128u + c0 + tx + 48u] = acc33; }
}

// add [8, 9] -> [128]
// sigmoid [10] -> [128]
// mul [10, 11] -> [128]
@compute @workgroup_size(64)
fn n10_n12(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch * 128u) { return; }
  let b = i / 128u;
  let e = i % 128u;
  {
    A[VB + 642u * P.batch + b * 128u + e] = (A[VB + 514u * P.batch + b * 128u + e] + opaque(A[16768u + e]));
  }
  {
    A[VB + 770u * P.batch + b * 128u + e] = sigmoid_s(A[VB + 642u * P.batch + b * 128u + e]);
  }
  {
    A[VB + 898u * P.batch + b * 128u + e] = (A[VB + 642u * P.batch + b * 128u + e] * A[VB + 770u * P.batch + b * 128u + e]);
  }
}

// matmul [12, 13] -> [1]
// add [14, 15] -> [1]
@compute @workgroup_size(64)
fn n14_n16(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch * 1u) { return; }
  let b = i / 1u;
  let e = i % 1u;
  {
    let row = e / 1u;
    let col = e % 1u;
    var acc = 0.0;
    for (var p = 0u; p < 128u; p++) {
      let prod = A[VB + 898u * P.batch + b * 128u + row * 128u + p] * A[16896u + p * 1u + col];
      acc = acc + prod;
    }
    A[VB + 1026u * P.batch + b * 1u + e] = acc;
  }
  {
    A[VB + 1027u * P.batch + b * 1u + e] = (A[VB + 1026u * P.batch + b * 1u + e] + opaque(A[17024u + e]));
  }
}

// sum[0] [16] -> []
// mul [20, 25] -> [128]
@compute @workgroup_size(64)
fn n17_n26(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch * 128u) { return; }
  let b = i / 128u;
  let e = i % 128u;
  if (e < 1u) {
    var acc = 0.0;
    for (var r0 = 0u; r0 < 1u; r0++) {
      acc = acc + A[VB + 1027u * P.batch + b * 1u + (r0 * 1u)];
    }
    A[VB + 1028u * P.batch + b * 1u + e] = acc;
  }
  {
    A[VB + 1029u * P.batch + b * 128u + e] = (A[16896u + e] * (A[VB + 770u * P.batch + b * 128u + e] + opaque((A[VB + 642u * P.batch + b * 128u + e] * (A[VB + 770u * P.batch + b * 128u + e] * (A[17025u + e] - opaque(A[VB + 770u * P.batch + b * 128u + e])))))));
  }
}

// matmul [7, 26] -> [128], tiled: 64×64 values per workgroup
@compute @workgroup_size(256)
fn n27(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let rows = P.batch * 1u;
  let t = wg.x + wg.y * 65535u;
  let r0 = (t / 2u) * 64u;
  let c0 = (t % 2u) * 64u;
  if (r0 >= rows) { return; }
  let ab = VB + 1029u * P.batch;
  let tx = li % 16u;
  let ty = li / 16u;
  var acc00 = 0.0;
  var acc01 = 0.0;
  var acc02 = 0.0;
  var acc03 = 0.0;
  var acc10 = 0.0;
  var acc11 = 0.0;
  var acc12 = 0.0;
  var acc13 = 0.0;
  var acc20 = 0.0;
  var acc21 = 0.0;
  var acc22 = 0.0;
  var acc23 = 0.0;
  var acc30 = 0.0;
  var acc31 = 0.0;
  var acc32 = 0.0;
  var acc33 = 0.0;
  for (var p0 = 0u; p0 < 128u; p0 += 16u) {
    for (var q = 0u; q < 4u; q++) {
      let l = li + q * 256u;
      let r = r0 + l / 16u;
      let pa = p0 + l % 16u;
      var va = 0.0;
      if (r < rows && pa < 128u) { va = A[ab + r * 128u + pa]; }
      TA[l] = va;
      let pb = p0 + l / 64u;
      let c = c0 + l % 64u;
      var vb = 0.0;
      if (pb < 128u && c < 128u) { vb = A[384u + c * 128u + pb]; }
      TB[l] = vb;
    }
    workgroupBarrier();
    let kt = min(16u, 128u - p0);
    for (var p = 0u; p < kt; p++) {
      let y0 = TB[p * 64u + tx + 0u];
      let y1 = TB[p * 64u + tx + 16u];
      let y2 = TB[p * 64u + tx + 32u];
      let y3 = TB[p * 64u + tx + 48u];
      let x0 = TA[(ty + 0u) * 16u + p];
      let p00 = x0 * y0;
      acc00 = acc00 + p00;
      let p01 = x0 * y1;
      acc01 = acc01 + p01;
      let p02 = x0 * y2;
      acc02 = acc02 + p02;
      let p03 = x0 * y3;
      acc03 = acc03 + p03;
      let x1 = TA[(ty + 16u) * 16u + p];
      let p10 = x1 * y0;
      acc10 = acc10 + p10;
      let p11 = x1 * y1;
      acc11 = acc11 + p11;
      let p12 = x1 * y2;
      acc12 = acc12 + p12;
      let p13 = x1 * y3;
      acc13 = acc13 + p13;
      let x2 = TA[(ty + 32u) * 16u + p];
      let p20 = x2 * y0;
      acc20 = acc20 + p20;
      let p21 = x2 * y1;
      acc21 = acc21 + p21;
      let p22 = x2 * y2;
      acc22 = acc22 + p22;
      let p23 = x2 * y3;
      acc23 = acc23 + p23;
      let x3 = TA[(ty + 48u) * 16u + p];
      let p30 = x3 * y0;
      acc30 = acc30 + p30;
      let p31 = x3 * y1;
      acc31 = acc31 + p31;
      let p32 = x3 * y2;
      acc32 = acc32 + p32;
      let p33 = x3 * y3;
      acc33 = acc33 + p33;
    }
    workgroupBarrier();
  }
  let ob = VB + 1157u * P.batch;
  let row0 = r0 + ty + 0u;
  if (row0 < rows && c0 + tx + 0u < 128u) { A[ob + row0 * 128u + c0 + tx + 0u] = acc00; }
  if (row0 < rows && c0 + tx + 16u < 128u) { A[ob + row0 * 128u + c0 + tx + 16u] = acc01; }
  if (row0 < rows && c0 + tx + 32u < 128u) { A[ob + row0 * 128u + c0 + tx + 32u] = acc02; }
  if (row0 < rows && c0 + tx + 48u < 128u) { A[ob + row0 * 128u + c0 + tx + 48u] = acc03; }
  let row1 = r0 + ty + 16u;
  if (row1 < rows && c0 + tx + 0u < 128u) { A[ob + row1 * 128u + c0 + tx + 0u] = acc10; }
  if (row1 < rows && c0 + tx + 16u < 128u) { A[ob + row1 * 128u + c0 + tx + 16u] = acc11; }
  if (row1 < rows && c0 + tx + 32u < 128u) { A[ob + row1 * 128u + c0 + tx + 32u] = acc12; }
  if (row1 < rows && c0 + tx + 48u < 128u) { A[ob + row1 * 128u + c0 + tx + 48u] = acc13; }
  let row2 = r0 + ty + 32u;
  if (row2 < rows && c0 + tx + 0u < 128u) { A[ob + row2 * 128u + c0 + tx + 0u] = acc20; }
  if (row2 < rows && c0 + tx + 16u < 128u) { A[ob + row2 * 128u + c0 + tx + 16u] = acc21; }
  if (row2 < rows && c0 + tx + 32u < 128u) { A[ob + row2 * 128u + c0 + tx + 32u] = acc22; }
  if (row2 < rows && c0 + tx + 48u < 128u) { A[ob + row2 * 128u + c0 + tx + 48u] = acc23; }
  let row3 = r0 + ty + 48u;
  if (row3 < rows && c0 + tx + 0u < 128u) { A[ob + row3 * 128u + c0 + tx + 0u] = acc30; }
  if (row3 < rows && c0 + tx + 16u < 128u) { A[ob + row3 * 128u + c0 + tx + 16u] = acc31; }
  if (row3 < rows && c0 + tx + 32u < 128u) { A[ob + row3 * 128u + c0 + tx + 32u] = acc32; }
  if (row3 < rows && c0 + tx + 48u < 128u) { A[ob + row3 * 128u + c0 + tx + 48u] = acc33; }
}

// mul [27, 31] -> [128]
@compute @workgroup_size(64)
fn n32(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch * 128u) { return; }
  let b = i / 128u;
  let e = i % 128u;
  A[VB + 1285u * P.batch + b * 128u + e] = (A[VB + 1157u * P.batch + b * 128u + e] * (A[VB + 258u * P.batch + b * 128u + e] + opaque((A[VB + 130u * P.batch + b * 128u + e] * (A[VB + 258u * P.batch + b * 128u + e] * (A[17025u + e] - opaque(A[VB + 258u * P.batch + b * 128u + e])))))));
}

// matmul [1, 32] -> [2]
@compute @workgroup_size(64)
fn n33(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 4194240u;
  if (i >= P.batch * 2u) { return; }
  let b = i / 2u;
  let e = i % 2u;
  let row = e / 1u;
  let col = e % 1u;
  var acc = 0.0;
  for (var p = 0u; p < 128u; p++) {
    let prod = A[0u + row * 128u + p] * A[VB + 1285u * P.batch + b * 128u + p * 1u + col];
    acc = acc + prod;
  }
  A[VB + 1413u * P.batch + b * 2u + e] = acc;
}

