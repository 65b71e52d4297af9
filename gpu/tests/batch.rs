//! One dispatch for a batch of rooms equals the CPU reference byte for byte.

// The ring is raw shared memory: handing it to `Converter::import` is unsafe.
#![allow(unsafe_code)]

mod common;

use std::time::{Duration, Instant};

use common::{assert_same, lay_out, nv12_of, open, outputs, reference, Ring, Spec};
use retrofarm_gpu::{Converter, Job, SourceMode};
use retrofarm_media::PixelFormat::{Rgb565, Xrgb1555, Xrgb8888};

/// Eight rooms: NES, GBA, GB and other sizes at scales 1 to 3, some letterboxed, with stride
/// padding that leaves rows (and, with the odd gaps, frames) at unaligned offsets.
const ROOMS: [Spec; 8] = [
    Spec::new(Xrgb8888, 256, 240, 32, 1, None),
    Spec::new(Xrgb8888, 256, 240, 0, 2, Some((640, 480))),
    Spec::new(Rgb565, 240, 160, 16, 3, None),
    Spec::new(Rgb565, 240, 160, 0, 2, Some((640, 360))),
    Spec::new(Rgb565, 160, 144, 2, 1, Some((256, 240))),
    Spec::new(Rgb565, 160, 144, 3, 3, None),
    Spec::new(Xrgb1555, 320, 224, 6, 2, Some((700, 480))),
    Spec::new(Xrgb8888, 7, 5, 1, 3, Some((30, 20))),
];

/// Odd and tiny sizes, every format, scale 4.
const ODD: [Spec; 4] = [
    Spec::new(Rgb565, 7, 5, 0, 1, None),
    Spec::new(Xrgb8888, 1, 1, 0, 4, Some((10, 10))),
    Spec::new(Xrgb1555, 3, 3, 1, 1, None),
    Spec::new(Xrgb8888, 13, 9, 4, 3, Some((64, 32))),
];

fn check(converter: &mut Converter, memory: &[u8], jobs: &[Job], out: &[retrofarm_media::I420Frame], what: &str) {
    let mut nv12 = Vec::new();
    for (i, (job, got)) in jobs.iter().zip(out).enumerate() {
        let want = reference(memory, job);
        assert_same(
            &format!("{what} job {i} {:?} {}x{} x{}", job.format, job.width, job.height, job.placement.scale),
            got,
            &want,
        );
        let layout = converter.read_nv12(i, &mut nv12).expect("read NV12");
        assert_eq!((layout.width as usize, layout.height as usize), (want.width(), want.height()));
        assert_eq!(layout.pitch % 8, 0);
        assert!(nv12 == nv12_of(&want), "{what} job {i}: NV12 differs from interleaved I420");
    }
}

fn run_specs(specs: &[Spec], seed: u64) {
    let Some(mut converter) = open() else { return };
    let mut ring = Ring::new(8 << 20);
    let offsets = lay_out(&mut ring, specs, 4096 + 3, 5, seed);
    // SAFETY: the ring outlives the converter's use of it (released below, before the drop).
    let source = unsafe { converter.import(ring.ptr(), ring.len()) }.expect("import");
    let jobs: Vec<Job> = specs.iter().zip(&offsets).map(|(s, &o)| s.job(source, o)).collect();

    let mut out = outputs(jobs.len());
    let report = converter.convert(&jobs, &mut out).expect("convert");
    assert_eq!((report.jobs, report.submits), (jobs.len(), 1));
    check(&mut converter, ring.bytes(), &jobs, &out, "batch");

    // One submission per job: the same pictures, the same output memory.
    let mut each = outputs(jobs.len());
    let report = converter.convert_each(&jobs, &mut each).expect("convert_each");
    assert_eq!(report.submits, jobs.len());
    check(&mut converter, ring.bytes(), &jobs, &each, "convert_each");

    // The same frames through the staging path: a misaligned view of the ring.
    // SAFETY: as above.
    let staged = unsafe { converter.import(ring.ptr().wrapping_add(1), ring.len() - 1) }.expect("import");
    assert_eq!(converter.source_mode(staged), Some(SourceMode::Staging));
    let staged_jobs: Vec<Job> = jobs.iter().map(|j| Job { source: staged, offset: j.offset - 1, ..*j }).collect();
    let mut again = outputs(jobs.len());
    let report = converter.convert(&staged_jobs, &mut again).expect("convert staged");
    assert!(report.staged_bytes > 0);
    check(&mut converter, &ring.bytes()[1..], &staged_jobs, &again, "staged");

    converter.release(source);
    converter.release(staged);
}

#[test]
fn a_batch_of_rooms_equals_the_cpu_reference() {
    run_specs(&ROOMS, 1);
    run_specs(&ROOMS, 2);
}

#[test]
fn odd_and_tiny_sizes_equal_the_cpu_reference() {
    run_specs(&ODD, 3);
}

#[test]
fn extreme_colours_equal_the_cpu_reference() {
    // Saturated and black frames exercise the ends of every range (random data rarely does).
    let Some(mut converter) = open() else { return };
    let mut ring = Ring::new(1 << 20);
    let specs = [
        Spec::new(Xrgb8888, 16, 8, 0, 1, None),
        Spec::new(Rgb565, 16, 8, 0, 1, None),
        Spec::new(Xrgb1555, 16, 8, 0, 1, None),
    ];
    for fill in [0x00u8, 0xff, 0x7f, 0x80] {
        let offsets = lay_out(&mut ring, &specs, 0, 0, 0);
        ring.bytes_mut().fill(fill);
        // SAFETY: the ring outlives the import (released below).
        let source = unsafe { converter.import(ring.ptr(), ring.len()) }.expect("import");
        let jobs: Vec<Job> = specs.iter().zip(&offsets).map(|(s, &o)| s.job(source, o)).collect();
        let mut out = outputs(jobs.len());
        converter.convert(&jobs, &mut out).expect("convert");
        check(&mut converter, ring.bytes(), &jobs, &out, &format!("fill {fill:#x}"));
        converter.release(source);
    }
}

#[test]
fn one_batch_against_one_submission_per_room_and_the_cpu() {
    // Rough numbers for the report (`--nocapture` shows them); asserts only that all succeed.
    let Some(mut converter) = open() else { return };
    let rooms = [
        Spec::new(Xrgb8888, 256, 240, 0, 2, None),
        Spec::new(Xrgb8888, 256, 240, 0, 2, None),
        Spec::new(Xrgb8888, 256, 240, 0, 2, None),
        Spec::new(Xrgb8888, 256, 240, 0, 2, None),
        Spec::new(Rgb565, 240, 160, 0, 3, None),
        Spec::new(Rgb565, 240, 160, 0, 3, None),
        Spec::new(Rgb565, 160, 144, 0, 3, None),
        Spec::new(Rgb565, 160, 144, 0, 3, None),
    ];
    let mut ring = Ring::new(4 << 20);
    let offsets = lay_out(&mut ring, &rooms, 0, 64, 7);
    // SAFETY: the ring outlives the converter's use of it.
    let source = unsafe { converter.import(ring.ptr(), ring.len()) }.expect("import");
    let jobs: Vec<Job> = rooms.iter().zip(&offsets).map(|(s, &o)| s.job(source, o)).collect();
    let mut out = outputs(jobs.len());
    converter.convert(&jobs, &mut out).expect("warm-up");
    const ROUNDS: u32 = 10;
    let (mut batch_gpu, mut batch_total, mut each_gpu, mut each_total) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut pixels = 0;
    for _ in 0..ROUNDS {
        let r = converter.convert(&jobs, &mut out).expect("convert");
        (batch_gpu, batch_total, pixels) = (batch_gpu + r.gpu_time, batch_total + r.total_time, r.pixels);
        let r = converter.convert_each(&jobs, &mut out).expect("convert_each");
        (each_gpu, each_total) = (each_gpu + r.gpu_time, each_total + r.total_time);
    }
    let started = Instant::now();
    for _ in 0..ROUNDS {
        for job in &jobs {
            std::hint::black_box(reference(ring.bytes(), job));
        }
    }
    let cpu = started.elapsed();
    let ms = |d: Duration| d.as_secs_f64() * 1e3 / f64::from(ROUNDS);
    println!(
        "8 rooms ({pixels} canvas pixels) on {}: one batch {:.2} ms GPU / {:.2} ms call; one submit per room {:.2} ms GPU / {:.2} ms call; convert_placed on the CPU (one thread) {:.2} ms",
        converter.device().name,
        ms(batch_gpu),
        ms(batch_total),
        ms(each_gpu),
        ms(each_total),
        ms(cpu)
    );
    converter.release(source);
}
