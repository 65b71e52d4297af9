// Emulator frames (XRGB8888, RGB565, XRGB1555) to BT.601 limited-range I420 and NV12, a whole
// batch of rooms in one dispatch. Compiled and validated by gpu/build.rs (naga); the host side
// is gpu/src/batch.rs. The result equals retrofarm_media::convert_placed byte for byte: same
// integer coefficients, same rounding, same nearest-neighbour scaling and letterboxing.
//
// One invocation makes an 8x2 block of luma (two u32 words per row; one division per column
// and per row to find the source pixel), the four 2x2 chroma blocks under it (one u32 of U and one of V for I420, two u32 of interleaved UV for NV12).
// global_invocation_id: x = block column, y = block row, z = job (plus params.job_base).
// Bytes are packed with shifts, so no 8-bit storage is needed; all arithmetic on colour
// values is i32, as on the CPU.

// One job. gpu/build.rs reads this layout and hands the field offsets to the Rust side, so the
// two cannot disagree; keep every field a u32.
struct Job {
    // Byte offset of the frame's first pixel in `arena` (any alignment).
    src_offset: u32,
    // Source size in pixels.
    src_width: u32,
    src_height: u32,
    // Bytes from one source row to the next (any value >= a row of pixels).
    src_stride: u32,
    // FORMAT_*: XRGB8888 (0x00RRGGBB), RGB565, XRGB1555 (0RRRRRGGGGGBBBBB).
    format: u32,
    // Whole-number nearest-neighbour upscaling factor, >= 1.
    scale: u32,
    // The picture produced (even sizes).
    canvas_width: u32,
    canvas_height: u32,
    // The scaled image on the canvas: [image_x, image_x + image_width) x
    // [image_y, image_y + image_height); black around it.
    image_x: u32,
    image_y: u32,
    image_width: u32,
    image_height: u32,
    // Byte offsets in `planes` (multiples of 4) of the Y plane, the I420 U and V planes and the
    // NV12 interleaved UV plane.
    out_y: u32,
    out_u: u32,
    out_v: u32,
    out_uv: u32,
    // Bytes per row of Y and of NV12 UV, a multiple of 8; I420 U and V rows are pitch / 2.
    pitch: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

struct Params {
    // Index in `jobs` of the job at global_invocation_id.z == 0: 0 for a batch, i when job i is
    // dispatched on its own.
    job_base: u32,
}

// All source frames of the batch, each copied in at a word-aligned offset.
@group(0) @binding(0) var<storage, read> arena: array<u32>;
@group(0) @binding(1) var<storage, read> jobs: array<Job>;
// Y, U, V and UV planes of every job.
@group(0) @binding(2) var<storage, read_write> planes: array<u32>;
var<push_constant> params: Params;

// Job.format codes (gpu/build.rs hands them to the Rust side).
const FORMAT_XRGB8888: u32 = 0u;
const FORMAT_RGB565: u32 = 1u;
const FORMAT_XRGB1555: u32 = 2u;

// BT.601 limited range in fixed point, as in media/src/convert.rs.
const Y_R: i32 = 8414;
const Y_G: i32 = 16520;
const Y_B: i32 = 3208;
const U_R: i32 = -4857;
const U_G: i32 = -9535;
const U_B: i32 = 14392;
const V_R: i32 = 14392;
const V_G: i32 = -12052;
const V_B: i32 = -2340;
// (16 << 15) + (1 << 14): offset and rounding of luma.
const LUMA_OFFSET: i32 = 540672;
// (128 << 17) + (1 << 16): offset and rounding of chroma from 2x2 sums.
const CHROMA_OFFSET: i32 = 16842752;

// The 4 bytes of `arena` starting at byte `at`, little-endian, at any alignment. Reads one
// word past the bytes it needs when unaligned: the host pads every frame in the arena by one.
fn load_u32(at: u32) -> u32 {
    let word = at >> 2u;
    let shift = (at & 3u) * 8u;
    let low = arena[word];
    if shift == 0u {
        return low;
    }
    return (low >> shift) | (arena[word + 1u] << (32u - shift));
}

// 5 bits to 8: 0 stays 0, 31 becomes 255.
fn widen5(c: i32) -> i32 {
    return (c << 3u) | (c >> 2u);
}

// The byte offset in `arena` of the source row under canvas row `cy`, the last row repeated
// into the even padding of odd heights; `inside` is false above and below the image (black).
struct SourceRow {
    offset: u32,
    inside: bool,
}

fn source_row(job: Job, cy: u32) -> SourceRow {
    if cy < job.image_y || cy >= job.image_y + job.image_height {
        return SourceRow(0u, false);
    }
    let sy = min((cy - job.image_y) / job.scale, job.src_height - 1u);
    return SourceRow(job.src_offset + sy * job.src_stride, true);
}

// Source pixel `sx` of the row at byte `row` as 8-bit R, G, B.
fn source_rgb(job: Job, row: u32, sx: u32) -> vec3<i32> {
    if job.format == FORMAT_XRGB8888 {
        let p = load_u32(row + sx * 4u);
        return vec3<i32>(i32((p >> 16u) & 0xffu), i32((p >> 8u) & 0xffu), i32(p & 0xffu));
    }
    let p = i32(load_u32(row + sx * 2u) & 0xffffu);
    if job.format == FORMAT_RGB565 {
        let g6 = (p >> 5u) & 0x3f;
        return vec3<i32>(widen5(p >> 11u), (g6 << 2u) | (g6 >> 4u), widen5(p & 0x1f));
    }
    // FORMAT_XRGB1555
    return vec3<i32>(widen5((p >> 10u) & 0x1f), widen5((p >> 5u) & 0x1f), widen5(p & 0x1f));
}

fn luma(c: vec3<i32>) -> u32 {
    return u32((Y_R * c.r + Y_G * c.g + Y_B * c.b + LUMA_OFFSET) >> 15u) & 0xffu;
}

// Cb from the sums of R, G, B over a 2x2 block (arithmetic shift, as on the CPU).
fn chroma_u(s: vec3<i32>) -> u32 {
    return u32((U_R * s.r + U_G * s.g + U_B * s.b + CHROMA_OFFSET) >> 17u) & 0xffu;
}

// Cr from the sums of R, G, B over a 2x2 block.
fn chroma_v(s: vec3<i32>) -> u32 {
    return u32((V_R * s.r + V_G * s.g + V_B * s.b + CHROMA_OFFSET) >> 17u) & 0xffu;
}

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let job = jobs[params.job_base + id.z];
    // Top-left luma pixel of this invocation's 8x2 block.
    let x0 = id.x * 8u;
    let y0 = id.y * 2u;
    if x0 >= job.canvas_width || y0 >= job.canvas_height {
        return;
    }
    var rows = array<SourceRow, 2>(source_row(job, y0), source_row(job, y0 + 1u));
    // Luma bytes of the two rows, four per word; chroma bytes of the four 2x2 blocks.
    var luma_words = array<u32, 4>(0u, 0u, 0u, 0u); // top 0, top 1, bottom 0, bottom 1
    var u = 0u;
    var v = 0u;
    for (var i = 0u; i < 4u; i++) {
        var sum = vec3<i32>(0, 0, 0);
        for (var k = 0u; k < 2u; k++) {
            // Canvas pixel (cx, y0 + r): black outside the image (columns past the canvas
            // width, up to the pitch, are outside too), else the nearest source pixel, the last
            // column repeated into the even padding of odd widths.
            let cx = x0 + 2u * i + k;
            let byte = (2u * i + k) & 3u;
            if cx >= job.image_x && cx < job.image_x + job.image_width {
                let sx = min((cx - job.image_x) / job.scale, job.src_width - 1u);
                for (var r = 0u; r < 2u; r++) {
                    var rgb = vec3<i32>(0, 0, 0);
                    if rows[r].inside {
                        rgb = source_rgb(job, rows[r].offset, sx);
                    }
                    luma_words[2u * r + (i >> 1u)] |= luma(rgb) << (8u * byte);
                    sum += rgb;
                }
            } else {
                // Black (its chroma comes from the zero it adds to the sum).
                let black = luma(vec3<i32>(0, 0, 0)) << (8u * byte);
                luma_words[i >> 1u] |= black;
                luma_words[2u + (i >> 1u)] |= black;
            }
        }
        u |= chroma_u(sum) << (8u * i);
        v |= chroma_v(sum) << (8u * i);
    }
    let pitch_words = job.pitch >> 2u;
    let y_word = (job.out_y + y0 * job.pitch + x0) >> 2u;
    planes[y_word] = luma_words[0];
    planes[y_word + 1u] = luma_words[1];
    planes[y_word + pitch_words] = luma_words[2];
    planes[y_word + pitch_words + 1u] = luma_words[3];
    // Chroma row id.y, chroma columns 4 id.x .. 4 id.x + 3.
    let chroma_at = id.y * (job.pitch >> 1u) + x0 / 2u;
    planes[(job.out_u + chroma_at) >> 2u] = u;
    planes[(job.out_v + chroma_at) >> 2u] = v;
    // NV12: U0 V0 U1 V1 | U2 V2 U3 V3.
    let uv_word = (job.out_uv + id.y * job.pitch + x0) >> 2u;
    planes[uv_word] = (u & 0xffu) | ((v & 0xffu) << 8u) | (((u >> 8u) & 0xffu) << 16u)
        | (((v >> 8u) & 0xffu) << 24u);
    planes[uv_word + 1u] = ((u >> 16u) & 0xffu) | (((v >> 16u) & 0xffu) << 8u) | ((u >> 24u) << 16u)
        | ((v >> 24u) << 24u);
}
